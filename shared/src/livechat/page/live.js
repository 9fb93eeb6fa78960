"use strict";
// Live WhatsApp chat inside a CRM record. No framework; the CRMs' own SDKs
// are vendored and served by us (/live/sdk/…), nothing from a CDN.
//
// Who the user is never comes from the page's query or the CRM's unsigned
// context:
// - Pipedrive: the app-extensions SDK asks Pipedrive for its signed token
//   (GET_SIGNED_TOKEN), which the backend verifies and swaps for a short
//   live-chat session.
// - Zoho: nothing Zoho hands a widget is signed, so the user signs in through
//   our own Zoho OAuth in a popup, which hands a one-time code back by
//   postMessage (or shows it for pasting when the opener link is cut); the
//   code works only with the nonce this page began with and never left it
//   but for the popup; getCurrentUser() is only compared, to warn about a
//   mismatch.
// The session lives in memory only (no third-party cookies) and goes out as
// the X-Live-Session header. The record id is a hint too: the backend reads
// the record with the user's own CRM token and decides what it shows.
(function () {
  // 1.5 s: a new message is on screen within 2 s of its webhook (p95).
  var POLL_MS = 1500;
  // The api function is invoked with at most 6 MB; a file travels base64
  // encoded (4/3 larger) inside JSON, so about 4 MB is what fits.
  var TRANSPORT_MAX = 4 * 1024 * 1024;
  var IMAGE_MAX = 5 * 1024 * 1024;
  var IMAGE_TYPES = ["image/jpeg", "image/png"];
  var REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🙏"];
  var EMOJI = ["😊", "😂", "👍", "🙏", "❤️", "🎉", "👋", "😉", "🙂", "✅", "📅", "📞"];
  var TICKS = { sent: "✓", delivered: "✓✓", read: "✓✓", played: "✓✓ 🔊", failed: "⚠" };
  var NEW_CHAT = "__new";

  var $ = function (id) { return document.getElementById(id); };
  var meta = function (n) { var m = document.querySelector('meta[name="' + n + '"]'); return m ? m.content : ""; };
  var CRM = meta("live-crm"), CRM_NAME = meta("live-crm-name");
  var state = {
    session: null, expiresAt: 0, askedAt: 0, crmUser: null,
    record: null, view: null, etag: null, chatKey: null, shown: "",
    older: {}, oldestReached: {}, pending: null, timer: null, replyTo: null,
    templates: {}, templateFor: null, marked: {}, blobs: {}, nonce: null
  };

  function now() { return Date.now() / 1000; }
  function show(text) { $("status").textContent = text || ""; }
  function enc(s) { return encodeURIComponent(s); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }
  function randomHex(bytes) {
    return Array.prototype.map.call(crypto.getRandomValues(new Uint8Array(bytes)), function (x) {
      return (x + 256).toString(16).slice(1);
    }).join("");
  }
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var h = randomHex(16);
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-4" + h.slice(13, 16) + "-a" + h.slice(17, 20) + "-" + h.slice(20);
  }

  function api(method, path, body, headers) {
    var h = { "x-live-session": state.session || "" };
    if (body) h["content-type"] = "application/json";
    Object.keys(headers || {}).forEach(function (k) { h[k] = headers[k]; });
    return fetch(path, { method: method, headers: h, body: body ? JSON.stringify(body) : undefined })
      .then(function (r) {
        if (r.status === 304) return { status: 304, body: null, headers: r.headers };
        return r.json().catch(function () { return {}; }).then(function (b) {
          return { status: r.status, body: b, headers: r.headers };
        });
      });
  }
  function errorText(res, fallback) {
    var e = res.body && res.body.error;
    return (e && (e.message || e.code)) || fallback + " (" + res.status + ")";
  }

  // ---- who the user is -------------------------------------------------

  function setSession(body) {
    state.session = body.session; state.expiresAt = body.expires_at;
    state.crmUser = { id: body.crm_user_id, name: body.crm_user_name, email: body.crm_user_email };
    $("connect").hidden = true; $("sign-in").hidden = true; $("code-form").hidden = true;
    if (identity.signedIn) identity.signedIn();
    state.etag = null;
    poll();
  }
  function startSession(path, body) {
    return fetch(path, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (b) {
        if (r.status === 200 && b.session) setSession(b);
        else if (r.status === 403 && b.error && b.error.code === "not_connected") notConnected(b.error.connect);
        return { status: r.status, body: b };
      });
    });
  }
  function notConnected(where) {
    state.session = null; show("");
    hideChat();
    if (where) $("connect-link").href = where;
    $("connect").hidden = false;
  }
  function hideChat() {
    $("messages").hidden = true; $("composer").hidden = true; $("start").hidden = true; $("older").hidden = true;
  }

  function pipedriveIdentity() {
    var SDK = window.AppExtensionsSDK, sdk;
    try { sdk = new SDK(); } catch (e) {
      show("Open WhatsApp from a Pipedrive person, deal or lead: this page needs Pipedrive's frame.");
      return {};
    }
    var q = new URLSearchParams(location.search);
    var resource = q.get("resource"), id = (q.get("selectedIds") || "").split(",")[0];
    var modules = { person: "persons", deal: "deals", organization: "organizations", lead: "leads" };
    if (q.get("record")) state.record = q.get("record");
    else if (resource && id) state.record = (modules[resource] || resource) + "/" + id;
    function ask() {
      state.askedAt = now();
      sdk.execute(SDK.Command.GET_SIGNED_TOKEN).then(function (r) {
        return startSession("/api/live/pipedrive/session", { token: r.token }).then(function (res) {
          if (res.status !== 200 && res.status !== 403) show("Pipedrive's token was refused (" + res.status + "). Reload the panel.");
        });
      }).catch(function () { show("Pipedrive gave no token. Reload the panel."); });
    }
    show("Waiting for Pipedrive…");
    sdk.initialize({ size: { height: 640 } }).then(ask, function () { show("Pipedrive did not answer. Reload the panel."); });
    return {
      renew: ask,
      retry: ask,
      unread: function (n) { sdk.execute(SDK.Command.SET_NOTIFICATION, { number: n }).catch(function () {}); }
    };
  }

  function zohoIdentity() {
    if (!window.ZOHO || window.parent === window || !new URLSearchParams(location.search).get("serviceOrigin")) {
      show("Open WhatsApp from a Zoho CRM record: this page is a Zoho CRM widget.");
      return {};
    }
    ZOHO.embeddedApp.on("PageLoad", function (ctx) {
      var id = Array.isArray(ctx && ctx.EntityId) ? ctx.EntityId[0] : ctx && ctx.EntityId;
      if (ctx && ctx.Entity && id) {
        state.record = ctx.Entity + "/" + id; state.etag = null;
        if (state.session) poll();
      }
    });
    show("Waiting for Zoho CRM…");
    ZOHO.embeddedApp.init().then(function () { if (!state.session) signIn(""); });
    return {
      retry: function () { signIn(""); },
      // A popup needs the user's click: an ended session asks again.
      ended: function () { signIn("Your chat session ended: sign in again."); },
      signedIn: function () {
        ZOHO.CRM.CONFIG.getCurrentUser().then(function (r) {
          var u = r && r.users && r.users[0], m = $("mismatch");
          var differs = u && state.crmUser && state.crmUser.id && String(u.id) !== String(state.crmUser.id);
          m.hidden = !differs;
          if (differs) {
            m.textContent = "You are signed in as " + (state.crmUser.name || "another user") +
              (state.crmUser.email ? " (" + state.crmUser.email + ")" : "") + ", not as " +
              (u.full_name || u.email || "the user of this Zoho CRM window") + ". Chats and sends are " +
              (state.crmUser.name || "that user") + "'s.";
          }
        }).catch(function () {});
      }
    };
  }

  function signIn(why) {
    state.session = null; hideChat(); show("");
    $("sign-in").hidden = false;
    var err = $("sign-in-error"); err.hidden = !why; err.textContent = why || "";
  }
  $("sign-in-button").addEventListener("click", function () {
    var nonce = randomHex(32);
    state.nonce = nonce;
    var popup = window.open("/oauth/zoho/live?nonce=" + enc(nonce), "zoho-sign-in", "popup,width=520,height=680");
    var err = $("sign-in-error");
    err.hidden = false;
    if (!popup) { err.textContent = "Allow pop-ups for this page to sign in."; return; }
    err.textContent = "Finish signing in in the window that opened…";
    // If the sign-in window lost its link to this page, it shows the code.
    $("code-form").hidden = false; $("code-input").value = "";
  });
  function redeem(code) {
    if (!state.nonce || state.session) return;
    startSession("/api/live/zoho/session", { code: code, nonce: state.nonce }).then(function (res) {
      if (res.status !== 200 && res.status !== 403 && !state.session) {
        var err = $("sign-in-error"); err.hidden = false; err.textContent = errorText(res, "Sign-in failed");
      }
    });
  }
  $("code-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var code = $("code-input").value.trim();
    if (code) redeem(code);
  });
  window.addEventListener("message", function (e) {
    var d = e.data;
    if (e.origin !== location.origin || !d || d.type !== "zoho-live-code" || d.nonce !== state.nonce || state.session) return;
    if (d.notConnected) { notConnected("/oauth/zoho/start"); return; }
    redeem(d.code);
  });

  var identity = CRM === "zoho" ? zohoIdentity() : pipedriveIdentity();
  $("retry").addEventListener("click", function () { if (identity.retry) identity.retry(); });

  function sessionEnded() {
    state.session = null;
    if (identity.ended) identity.ended(); else if (identity.renew) identity.renew();
  }

  // ---- reading ---------------------------------------------------------

  // Polling, not a socket: the functions run on Lambda behind an HTTP API,
  // which holds no connections. A GET every 1.5 s while the page is visible,
  // with the last answer's ETag so an unchanged chat costs a 304; it stops
  // while the panel or tab is hidden.
  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(poll, POLL_MS);
  }
  function poll() {
    clearTimeout(state.timer);
    if (!state.session) return;
    if (identity.renew && state.expiresAt - now() < 60 && now() - state.askedAt > 30) identity.renew();
    if (document.visibilityState !== "visible") return;
    if (!state.record) { show(CRM === "zoho" ? "Waiting for Zoho CRM's record…" : "Open WhatsApp from a person, deal or lead."); return; }
    var headers = {};
    if (state.etag) headers["if-none-match"] = state.etag;
    // What the CRM last showed of the record: no CRM call while it holds.
    if (state.view && state.view.record_pass) headers["x-live-record-pass"] = state.view.record_pass;
    api("GET", "/api/live/chats?record=" + enc(state.record), null, headers).then(function (res) {
      if (res.status === 200) {
        state.etag = res.headers.get("etag"); state.view = res.body; show(""); render();
      } else if (res.status === 304) {
        show("");
      } else if (res.status === 403 && res.body.error && res.body.error.code === "not_connected") {
        notConnected(res.body.error.connect); return;
      } else if (res.status === 401) {
        sessionEnded(); return;
      } else if (res.status === 404) {
        hideChat(); show("This record shows no WhatsApp chat to you.");
      } else show("The chat could not be loaded (" + res.status + "). Retrying…");
      schedule();
    }, function () { show("Offline. Retrying…"); schedule(); });
  }
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "visible") poll(); });

  function chats() { return (state.view && state.view.chats) || []; }
  function currentChat() {
    if (state.chatKey === NEW_CHAT) return null;
    return chats().filter(function (c) { return c.chat_key === state.chatKey; })[0] || chats()[0] || null;
  }
  function messagesOf(chat) {
    var older = state.older[chat.chat_key] || [];
    var seen = {};
    return (chat.messages || []).concat(older).filter(function (m) {
      if (seen[m.message_id]) return false;
      seen[m.message_id] = true; return true;
    });
  }
  function senders() {
    return ((state.view && state.view.senders) || []).filter(function (s) { return s.can_send !== false; });
  }

  function render() {
    var list = chats(), picker = $("chat-picker");
    var canStart = (state.view.numbers || []).length > 0 && senders().length > 0;
    var options = list.map(function (c) {
      return [c.chat_key, (c.contact_name || c.contact) + " ↔ " + c.business_number + (c.unread ? " (" + c.unread + ")" : "")];
    });
    if (canStart && list.length) options.push([NEW_CHAT, "＋ New chat"]);
    picker.hidden = options.length < 2;
    var labels = JSON.stringify(options);
    if (picker.dataset.labels !== labels) {
      picker.dataset.labels = labels; picker.textContent = "";
      options.forEach(function (o) { var opt = el("option", null, o[1]); opt.value = o[0]; picker.appendChild(opt); });
    }
    var total = list.reduce(function (n, c) { return n + (c.unread || 0); }, 0);
    $("unread").hidden = !total; $("unread").textContent = total + " new";
    if (identity.unread && state.lastUnread !== total) { state.lastUnread = total; identity.unread(total); }

    var chat = currentChat();
    $("messages").hidden = false; $("composer").hidden = false;
    if (!chat) {
      state.chatKey = list.length ? NEW_CHAT : null;
      if (list.length) picker.value = NEW_CHAT;
      $("title").textContent = "WhatsApp";
      $("older").hidden = true;
      renderList([], "No WhatsApp chat with " + ((state.view.numbers || []).join(", ") || "this record") + " yet.", null);
      renderStart(canStart);
      return;
    }
    $("start").hidden = true;
    state.chatKey = chat.chat_key; picker.value = chat.chat_key;
    $("title").textContent = (chat.contact_name ? chat.contact_name + " · " : "") + chat.contact;
    var messages = messagesOf(chat);
    $("older").hidden = !!state.oldestReached[chat.chat_key] || (chat.messages || []).length < (state.view.page_size || 50);
    renderList(messages, null, chat);
    renderComposer(chat);
    markRead(chat);
  }
  $("chat-picker").addEventListener("change", function (e) {
    state.chatKey = e.target.value; state.shown = ""; state.replyTo = null; render();
  });

  function day(ts) { return new Date(ts * 1000).toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short", year: "numeric" }); }
  function time(ts) { return new Date(ts * 1000).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }); }
  function excerpt(text) { text = text || ""; return text.length > 80 ? text.slice(0, 79) + "…" : text; }

  // The view sends each quote's excerpt (null once the quoted message is
  // gone) and the reactions on the message they are on.
  function quoteOf(m) {
    return m.reply_to ? (m.reply_to.excerpt || "a message") : null;
  }
  function reactionsOf(m) {
    return (m.reactions || []).filter(function (r) { return r.emoji; });
  }

  function renderList(messages, empty, chat) {
    var key = JSON.stringify([state.chatKey, messages, empty, chat && chat.can_send, chat && chat.window_closes_at > now()]);
    if (key === state.shown) return; // unchanged: keep the scroll position
    state.shown = key;
    var list = $("messages"), atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.textContent = "";
    if (empty) { var li = el("li", "day"); li.appendChild(el("span", null, empty)); list.appendChild(li); }
    var open = chat && chat.can_send !== false && chat.window_closes_at > now();
    var lastDay = null;
    messages.slice().reverse().forEach(function (m) {
      var d = day(m.timestamp);
      if (d !== lastDay) {
        lastDay = d;
        var sep = el("li", "day"); sep.appendChild(el("span", null, d)); list.appendChild(sep);
      }
      list.appendChild(renderMessage(m, chat, open));
    });
    if (atBottom || messages.length) list.scrollTop = list.scrollHeight;
  }

  function renderMessage(m, chat, open) {
    var item = el("li", "msg " + (m.direction === "outbound" ? "outbound" : "inbound"));
    item.dataset.id = m.message_id;
    var quote = quoteOf(m);
    if (quote) item.appendChild(el("div", "quote", quote));
    var media = m.media;
    if (media && (media.kind === "image" || media.kind === "sticker")) {
      var img = el("img", "preview"); img.alt = media.caption || media.file_name || "photo";
      loadMedia(chat, m, function (url) { img.src = url; });
      item.appendChild(img);
    } else if (media) {
      var doc = el("a", "doc", "⎙ " + (media.file_name || media.kind));
      doc.href = "#";
      doc.addEventListener("click", function (e) {
        e.preventDefault();
        loadMedia(chat, m, function (url) {
          var a = el("a"); a.href = url; a.download = media.file_name || "file"; a.click();
        });
      });
      item.appendChild(doc);
    }
    var text = media ? (media.caption || "") : (m.text != null ? m.text : "[" + (m.kind || "message") + "]");
    if (text) item.appendChild(el("div", "text", text));
    var reactions = reactionsOf(m);
    if (reactions.length) {
      var rs = el("div", "reactions");
      reactions.forEach(function (r) {
        var b = el("span", "reaction" + (r.direction === "outbound" ? " mine" : ""), r.emoji);
        rs.appendChild(b);
      });
      item.appendChild(rs);
    }
    var info = el("div", "meta");
    if (m.direction === "outbound" && m.sent_by) info.appendChild(el("span", "by", m.sent_by));
    if (m.state === "appended") { var saved = el("span", "saved", "saved to CRM"); saved.title = "Saved to the CRM note"; info.appendChild(saved); }
    info.appendChild(el("span", null, time(m.timestamp)));
    if (m.direction === "outbound") {
      var status = (m.delivery && m.delivery.status) || "pending";
      var ticks = el("span", "ticks", TICKS[status] || "🕓");
      ticks.dataset.status = status;
      ticks.title = status + (m.delivery && m.delivery.error ? ": " + (m.delivery.error.message || m.delivery.error) : "");
      info.appendChild(ticks);
    }
    item.appendChild(info);
    if (open) {
      var actions = el("div", "actions");
      var reply = el("button", "reply", "↩"); reply.type = "button"; reply.title = "Reply"; reply.setAttribute("aria-label", "Reply");
      reply.addEventListener("click", function () {
        state.replyTo = { id: m.message_id, text: excerpt(text || m.text) };
        renderQuote(); $("text").focus();
      });
      actions.appendChild(reply);
      if (m.direction !== "outbound") {
        var react = el("button", "react", "☺"); react.type = "button"; react.title = "React"; react.setAttribute("aria-label", "React");
        var bar = el("div", "reaction-bar"); bar.hidden = true;
        var mine = reactions.filter(function (r) { return r.direction === "outbound"; })[0];
        REACTIONS.forEach(function (em) {
          var b = el("button", null, em); b.type = "button"; b.setAttribute("aria-label", "React " + em);
          b.addEventListener("click", function () {
            bar.hidden = true;
            // The same emoji again takes the reaction back.
            var emoji = mine && mine.emoji === em ? "" : em;
            send(messagesPath(chat), { reaction: { message_id: m.message_id, emoji: emoji } });
          });
          bar.appendChild(b);
        });
        react.addEventListener("click", function () { bar.hidden = !bar.hidden; });
        actions.appendChild(react);
        item.appendChild(bar);
      }
      item.appendChild(actions);
    }
    return item;
  }

  function loadMedia(chat, m, then) {
    if (!chat) return;
    var cached = state.blobs[m.message_id];
    if (cached) { then(cached); return; }
    fetch("/api/live/chats/" + enc(chat.chat_key) + "/media/" + enc(m.message_id), { headers: { "x-live-session": state.session } })
      .then(function (r) { return r.ok ? r.blob() : null; })
      .then(function (b) { if (b) { state.blobs[m.message_id] = URL.createObjectURL(b); then(state.blobs[m.message_id]); } })
      .catch(function () {});
  }

  $("older").addEventListener("click", function () {
    var chat = currentChat();
    if (!chat) return;
    var messages = messagesOf(chat), oldest = messages[messages.length - 1];
    if (!oldest) return;
    api("GET", "/api/live/chats?record=" + enc(state.record) + "&chat=" + enc(chat.chat_key) + "&before=" + enc(oldest.message_id))
      .then(function (res) {
        if (res.status !== 200) return;
        var page = (res.body.chats || []).filter(function (c) { return c.chat_key === chat.chat_key; })[0];
        var more = (page && page.messages) || [];
        if (!more.length) state.oldestReached[chat.chat_key] = true;
        state.older[chat.chat_key] = (state.older[chat.chat_key] || []).concat(more);
        state.shown = ""; render();
      });
  });

  // Blue ticks for the customer: only while this chat is on screen, the page
  // visible, and its newest message scrolled into view.
  function markRead(chat) {
    if (!chat.unread || document.visibilityState !== "visible") return;
    var list = $("messages");
    if (list.scrollHeight - list.scrollTop - list.clientHeight > 40) return;
    var newest = (chat.messages || []).filter(function (m) { return m.direction !== "outbound" && m.kind !== "reaction"; })[0];
    if (!newest || state.marked[chat.chat_key] === newest.message_id) return;
    state.marked[chat.chat_key] = newest.message_id;
    api("POST", "/api/live/chats/" + enc(chat.chat_key) + "/read", { message_id: newest.message_id }).then(function (res) {
      if (res.status >= 300) state.marked[chat.chat_key] = null;
      else { state.etag = null; }
    }, function () { state.marked[chat.chat_key] = null; });
  }
  $("messages").addEventListener("scroll", function () { var c = state.view && currentChat(); if (c) markRead(c); });

  // ---- writing ---------------------------------------------------------

  function windowOpen(chat) { return !!chat && chat.window_closes_at > now(); }
  function renderComposer(chat) {
    var canSend = chat.can_send !== false, open = windowOpen(chat);
    var left = chat.window_closes_at ? chat.window_closes_at - now() : -1, w = $("window");
    w.classList.toggle("closed", !open);
    if (open) {
      var h = Math.floor(left / 3600), min = Math.floor((left % 3600) / 60);
      w.textContent = "Window closes in " + (h ? h + " h " : "") + min + " min";
    } else w.textContent = chat.window_closes_at ? "Window closed" : "Window not open";
    $("read-only").hidden = canSend;
    $("closed").hidden = !canSend || open;
    var free = canSend && open, busy = !!(state.pending && state.pending.inFlight);
    ["text", "emoji-toggle", "attach"].forEach(function (id) { $(id).disabled = !free; });
    $("send").disabled = !free || busy;
    $("template-toggle").disabled = !canSend;
    $("template-send").disabled = busy;
    $("row").hidden = !canSend;
    if (!free) { $("emoji").hidden = true; state.replyTo = null; renderQuote(); }
    var templatesFor = "chat:" + chat.chat_key;
    if (canSend && !open && $("templates").hidden) openTemplates(templatesFor);
    else if (!canSend) $("templates").hidden = true;
  }
  setInterval(function () { var c = state.view && currentChat(); if (c) renderComposer(c); }, 15000);

  function renderStart(canStart) {
    $("start").hidden = !canStart;
    $("window").textContent = "";
    $("read-only").hidden = true; $("closed").hidden = true; $("row").hidden = true;
    if (!canStart) { $("composer").hidden = true; return; }
    fill($("start-contact"), (state.view.numbers || []).map(function (n) { return [n, n]; }));
    fill($("start-from"), senders().map(function (s) { return [s.phone_number_id, s.business_number]; }));
    openTemplates("number:" + $("start-from").value);
  }
  function fill(select, options) {
    var labels = JSON.stringify(options);
    if (select.dataset.labels === labels) return;
    var keep = select.value;
    select.dataset.labels = labels; select.textContent = "";
    options.forEach(function (o) { var opt = el("option", null, o[1]); opt.value = o[0]; select.appendChild(opt); });
    if (options.some(function (o) { return o[0] === keep; })) select.value = keep;
  }
  $("start-from").addEventListener("change", function () { openTemplates("number:" + this.value); });

  function messagesPath(chat) { return "/api/live/chats/" + enc(chat.chat_key) + "/messages"; }

  // One client id per message: a retry after a network error, or a double
  // click, reuses it, so the backend sends it once.
  function send(path, payload, done) {
    if (!state.session) return;
    var key = path + JSON.stringify(payload);
    if (state.pending && state.pending.inFlight) return;
    if (!state.pending || state.pending.key !== key) state.pending = { key: key, client_id: uuid() };
    var p = state.pending; p.inFlight = true;
    var body = JSON.parse(JSON.stringify(payload)); body.client_id = p.client_id;
    busy(); $("send-error").hidden = true;
    api("POST", path, body).then(function (res) {
      p.inFlight = false;
      if (res.status === 200 || res.status === 201) {
        state.pending = null;
        if (done) done(res.body);
        state.etag = null; poll();
      } else {
        if (res.status !== 503) state.pending = null; // refused: trying again is a new message
        sendError(errorText(res, "Not sent"));
      }
      busy();
    }, function () {
      p.inFlight = false; busy();
      sendError("Not sent: offline. Send again to retry.");
    });
  }
  function busy() { var c = state.view && currentChat(); if (c) renderComposer(c); else $("template-send").disabled = !!(state.pending && state.pending.inFlight); }
  function sendError(text) { var e = $("send-error"); e.hidden = false; e.textContent = text; }

  function renderQuote() {
    $("quote").hidden = !state.replyTo;
    $("quote-text").textContent = state.replyTo ? "↩ " + state.replyTo.text : "";
  }
  $("quote-cancel").addEventListener("click", function () { state.replyTo = null; renderQuote(); });

  $("composer").addEventListener("submit", function (e) {
    e.preventDefault();
    var chat = currentChat(), text = $("text").value.trim();
    if (!chat || !text) return;
    var payload = { text: text };
    if (state.replyTo) payload.reply_to = state.replyTo.id;
    send(messagesPath(chat), payload, function () {
      if ($("text").value.trim() === text) $("text").value = "";
      state.replyTo = null; renderQuote();
    });
  });
  $("text").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
  });

  EMOJI.forEach(function (em) {
    var b = el("button", null, em); b.type = "button"; b.setAttribute("aria-label", em);
    b.addEventListener("click", function () {
      var t = $("text"), at = t.selectionStart != null ? t.selectionStart : t.value.length, end = t.selectionEnd != null ? t.selectionEnd : at;
      t.value = t.value.slice(0, at) + em + t.value.slice(end);
      t.focus(); t.selectionStart = t.selectionEnd = at + em.length;
    });
    $("emoji").appendChild(b);
  });
  $("emoji-toggle").addEventListener("click", function () {
    var e = $("emoji"); e.hidden = !e.hidden; this.setAttribute("aria-expanded", String(!e.hidden));
  });

  // Photos and documents: WhatsApp's limit per type, and what fits through
  // the api function.
  $("attach").addEventListener("click", function () { $("file").click(); });
  $("file").addEventListener("change", function () {
    var file = this.files && this.files[0], chat = currentChat();
    this.value = "";
    if (!file || !chat) return;
    var image = IMAGE_TYPES.indexOf(file.type) >= 0;
    var limit = Math.min(image ? IMAGE_MAX : Infinity, TRANSPORT_MAX);
    if (file.size > limit) {
      sendError(file.name + " is " + (file.size / 1048576).toFixed(1) + " MB: " +
        (image ? "photos" : "documents") + " up to " + (limit / 1048576) + " MB can be sent from here.");
      return;
    }
    var reader = new FileReader();
    reader.onload = function () {
      var data = String(reader.result).split(",")[1] || "";
      var caption = $("text").value.trim();
      var media = { kind: image ? "image" : "document", file_name: file.name, mime_type: file.type || "application/octet-stream", data_base64: data };
      if (caption) media.caption = caption;
      send(messagesPath(chat), { media: media }, function () { if ($("text").value.trim() === caption) $("text").value = ""; });
    };
    reader.onerror = function () { sendError("The file could not be read."); };
    reader.readAsDataURL(file);
  });

  // ---- templates -------------------------------------------------------

  $("template-toggle").addEventListener("click", function () {
    var chat = currentChat();
    if (!$("templates").hidden && windowOpen(chat)) { $("templates").hidden = true; this.setAttribute("aria-expanded", "false"); return; }
    if (chat) openTemplates("chat:" + chat.chat_key);
  });

  function templatesPath(target) {
    var record = state.record ? "?record=" + enc(state.record) : "";
    var parts = target.split(":");
    return parts[0] === "chat"
      ? "/api/live/chats/" + enc(parts[1]) + "/templates" + record
      : "/api/live/numbers/" + enc(parts[1]) + "/templates" + record;
  }

  function openTemplates(target) {
    $("templates").hidden = false; $("template-toggle").setAttribute("aria-expanded", "true");
    if (state.templateFor === target && state.templates[target]) return;
    state.templateFor = target;
    if (state.templates[target]) { showTemplates(state.templates[target]); return; }
    $("template-preview").textContent = "Loading templates…";
    api("GET", templatesPath(target)).then(function (res) {
      if (res.status !== 200) { $("template-preview").textContent = errorText(res, "Templates could not be loaded"); return; }
      state.templates[target] = res.body.templates || [];
      if (state.templateFor === target) showTemplates(state.templates[target]);
    }, function () { $("template-preview").textContent = "Templates could not be loaded: offline."; });
  }

  function paramsOf(t) {
    if (Array.isArray(t.parameters)) {
      return t.parameters.map(function (p, i) {
        return typeof p === "object" && p ? { name: p.name || String(i + 1), value: p.value || "" } : { name: String(i + 1), value: "" };
      });
    }
    var n = t.parameters || 0, out = [];
    for (var i = 0; i < n; i++) out.push({ name: String(i + 1), value: "" });
    return out;
  }

  function showTemplates(templates) {
    var picker = $("template-picker");
    picker.textContent = "";
    if (!templates.length) { $("template-preview").textContent = "This business number has no approved template."; $("template-send").disabled = true; return; }
    templates.forEach(function (t, i) {
      var o = el("option", null, t.name + " · " + t.language); o.value = String(i); picker.appendChild(o);
    });
    picker.value = "0";
    showTemplate();
  }
  function currentTemplate() {
    var list = state.templates[state.templateFor] || [];
    return list[Number($("template-picker").value)] || null;
  }
  function showTemplate() {
    var t = currentTemplate(), box = $("template-params");
    box.textContent = "";
    if (!t) return;
    $("template-category").textContent = (t.category || "").toLowerCase();
    $("template-category").className = "badge " + (t.category || "").toLowerCase();
    paramsOf(t).forEach(function (p) {
      var label = el("label", null, "{{" + p.name + "}} ");
      var input = el("input"); input.type = "text"; input.value = p.value; input.dataset.name = p.name;
      input.setAttribute("aria-label", "Parameter " + p.name);
      input.addEventListener("input", preview);
      label.appendChild(input); box.appendChild(label);
    });
    $("template-send").disabled = false;
    preview();
  }
  function values() {
    return Array.prototype.map.call($("template-params").querySelectorAll("input"), function (i) { return { name: i.dataset.name, value: i.value.trim() }; });
  }
  function preview() {
    var t = currentTemplate();
    if (!t) return;
    var text = t.body || "";
    values().forEach(function (v) {
      text = text.split("{{" + v.name + "}}").join(v.value || "{{" + v.name + "}}");
    });
    $("template-preview").textContent = text;
  }
  $("template-picker").addEventListener("change", showTemplate);
  $("template-send").addEventListener("click", function () {
    var t = currentTemplate();
    if (!t) return;
    var vals = values();
    var missing = vals.filter(function (v) { return !v.value; })[0];
    if (missing) { sendError("Fill in {{" + missing.name + "}} first."); return; }
    var template = { name: t.name, language: t.language, parameters: vals.map(function (v) { return v.value; }) };
    var chat = currentChat();
    if (chat) { send(messagesPath(chat), { template: template }); return; }
    send("/api/live/chats", {
      record: state.record, contact: $("start-contact").value, phone_number_id: $("start-from").value, template: template
    }, function (body) { if (body && body.chat_key) { state.chatKey = body.chat_key; state.shown = ""; } });
  });
})();
