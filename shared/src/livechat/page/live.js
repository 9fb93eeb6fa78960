"use strict";
// Live WhatsApp chat inside a CRM record. No framework, no CDN.
//
// Token hand-off: the page never trusts the query's userId/companyId. It asks
// its parent frame for Pipedrive's signed extension token by posting
// {type: "live-chat-ready"} to window.parent, and accepts only
// {type: "pipedrive-token", token} from window.parent on one of the origins
// in <meta name="live-parent-origins"> (the page's frame-ancestors). The
// official app-extensions SDK (GET_SIGNED_TOKEN) is not vendored; a host that
// has it answers with its token. The token is swapped once for a short-lived
// live-chat session kept in memory only; near its end a new token is asked.
(function () {
  var POLL_MS = 2000;
  var $ = function (id) { return document.getElementById(id); };
  var meta = function (n) { var m = document.querySelector('meta[name="' + n + '"]'); return m ? m.content : ""; };
  var parents = meta("live-parent-origins").split(/\s+/).filter(Boolean).map(function (p) {
    var rx = p.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[a-z0-9-]+(\\.[a-z0-9-]+)*");
    return new RegExp("^" + rx + "$", "i");
  });
  var state = { session: null, expiresAt: 0, askedAt: 0, view: null, shown: "", chatKey: null, pending: null, timer: null };

  // The record is only a hint: the backend reads the record with the user's own
  // CRM token and decides what it shows.
  function recordHint() {
    var q = new URLSearchParams(location.search);
    if (q.get("record")) return q.get("record");
    var resource = q.get("resource"), id = (q.get("selectedIds") || q.get("id") || "").split(",")[0];
    if (!resource || !id) return null;
    var modules = { person: "persons", deal: "deals", organization: "organizations", lead: "leads" };
    return (modules[resource] || resource) + "/" + id;
  }
  var record = recordHint();

  function show(text) { $("status").textContent = text || ""; }
  function now() { return Date.now() / 1000; }

  function askToken() {
    state.askedAt = now();
    if (window.parent !== window) window.parent.postMessage({ type: "live-chat-ready" }, "*");
  }
  window.addEventListener("message", function (e) {
    if (e.source !== window.parent || !parents.some(function (rx) { return rx.test(e.origin); })) return;
    var d = e.data;
    if (d && d.type === "pipedrive-token" && typeof d.token === "string") startSession(d.token);
  });

  function startSession(token) {
    fetch("/api/live/pipedrive/session", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ token: token })
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (r.status === 200 && body.session) {
          state.session = body.session; state.expiresAt = body.expires_at;
          $("connect").hidden = true;
          poll();
        } else if (r.status === 403 && body.error && body.error.code === "not_connected") {
          notConnected(body.error.connect);
        } else {
          show("Pipedrive's token was refused (" + r.status + "). Reload the panel.");
        }
      });
    }, function () { show("Cannot reach the server. Retrying…"); setTimeout(askToken, 5000); });
  }

  function notConnected(where) {
    state.session = null;
    show("");
    $("messages").hidden = true; $("composer").hidden = true;
    if (where) $("connect-link").href = where;
    $("connect").hidden = false;
  }
  $("retry").addEventListener("click", askToken);

  // Polling, not a socket: the functions run on Lambda behind an HTTP API,
  // which holds no connections; a GET every 2 s while the panel is visible is
  // cheap, and it stops while the panel or tab is hidden.
  function schedule() {
    clearTimeout(state.timer);
    state.timer = setTimeout(poll, POLL_MS);
  }
  function poll() {
    if (!state.session) return;
    if (state.expiresAt - now() < 60 && now() - state.askedAt > 30) askToken();
    if (document.visibilityState !== "visible") return;
    if (!record) { show("Open WhatsApp from a person or deal."); return; }
    fetch("/api/live/chats?record=" + encodeURIComponent(record), { headers: { "x-live-session": state.session } })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (body) {
          if (r.status === 200) { show(""); state.view = body; render(); }
          else if (r.status === 403 && body.error && body.error.code === "not_connected") { notConnected(); return; }
          else if (r.status === 401) { state.session = null; askToken(); return; }
          else if (r.status === 404) show("This record shows no WhatsApp chat to you.");
          else show("The chat could not be loaded (" + r.status + "). Retrying…");
          schedule();
        });
      }, function () { show("Offline. Retrying…"); schedule(); });
  }
  document.addEventListener("visibilitychange", function () { if (document.visibilityState === "visible") poll(); });

  function currentChat() {
    var chats = (state.view && state.view.chats) || [];
    return chats.filter(function (c) { return c.chat_key === state.chatKey; })[0] || chats[0] || null;
  }

  function render() {
    var chats = state.view.chats || [];
    var picker = $("chat-picker");
    picker.hidden = chats.length < 2;
    if (picker.options.length !== chats.length) {
      picker.textContent = "";
      chats.forEach(function (c) {
        var o = document.createElement("option");
        o.value = c.chat_key; o.textContent = (c.contact_name || c.contact) + " ↔ " + c.business_number;
        picker.appendChild(o);
      });
    }
    var chat = currentChat();
    $("messages").hidden = false; $("composer").hidden = !chat;
    if (!chat) {
      $("title").textContent = "WhatsApp";
      renderList([], "No WhatsApp chat with " + ((state.view.numbers || []).join(", ") || "this record") + " yet.");
      $("window").textContent = "";
      return;
    }
    state.chatKey = chat.chat_key; picker.value = chat.chat_key;
    $("title").textContent = (chat.contact_name ? chat.contact_name + " · " : "") + chat.contact;
    renderList(chat.messages || [], null);
    renderWindow(chat);
  }
  $("chat-picker").addEventListener("change", function (e) { state.chatKey = e.target.value; state.shown = ""; render(); });

  function day(ts) { return new Date(ts * 1000).toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short", year: "numeric" }); }
  function time(ts) { return new Date(ts * 1000).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" }); }
  var TICKS = { sent: "✓", delivered: "✓✓", read: "✓✓", played: "✓✓ 🔊", failed: "⚠" };

  function renderList(messages, empty) {
    var key = JSON.stringify([state.chatKey, messages, empty]);
    if (key === state.shown) return; // unchanged: keep the scroll position
    state.shown = key;
    var list = $("messages"), atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    list.textContent = "";
    if (empty) { var li = document.createElement("li"); li.className = "day"; li.textContent = empty; list.appendChild(li); }
    var lastDay = null;
    messages.slice().reverse().forEach(function (m) {
      var d = day(m.timestamp);
      if (d !== lastDay) {
        lastDay = d;
        var sep = document.createElement("li"); sep.className = "day";
        var s = document.createElement("span"); s.textContent = d; sep.appendChild(s); list.appendChild(sep);
      }
      var item = document.createElement("li");
      item.className = "msg " + (m.direction === "outbound" ? "outbound" : "inbound");
      item.dataset.id = m.message_id;
      var text = document.createElement("div"); text.className = "text";
      text.textContent = m.text != null ? m.text : "[" + (m.kind || "message") + "]";
      item.appendChild(text);
      var info = document.createElement("div"); info.className = "meta";
      if (m.direction === "outbound" && m.sent_by) { var by = document.createElement("span"); by.className = "by"; by.textContent = m.sent_by; info.appendChild(by); }
      if (m.state === "appended") { var saved = document.createElement("span"); saved.className = "saved"; saved.title = "Saved to the CRM"; saved.textContent = "saved to CRM"; info.appendChild(saved); }
      var t = document.createElement("span"); t.textContent = time(m.timestamp); info.appendChild(t);
      if (m.direction === "outbound") {
        var status = (m.delivery && m.delivery.status) || "pending";
        var ticks = document.createElement("span"); ticks.className = "ticks"; ticks.dataset.status = status;
        ticks.title = status; ticks.textContent = TICKS[status] || "🕓";
        info.appendChild(ticks);
      }
      item.appendChild(info);
      list.appendChild(item);
    });
    if (atBottom || messages.length) list.scrollTop = list.scrollHeight;
  }

  function renderWindow(chat) {
    var left = chat.window_closes_at ? chat.window_closes_at - now() : -1;
    var open = left > 0, w = $("window");
    w.classList.toggle("closed", !open);
    if (open) {
      var h = Math.floor(left / 3600), min = Math.floor((left % 3600) / 60);
      w.textContent = "Window closes in " + (h ? h + " h " : "") + min + " min";
    } else w.textContent = "Window closed";
    $("closed").hidden = open;
    $("text").disabled = !open; $("send").disabled = !open || !!state.pending; $("emoji-toggle").disabled = !open;
  }
  setInterval(function () { var c = state.view && currentChat(); if (c) renderWindow(c); }, 15000);

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16)); b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  // One client id per message: a retry after a network error or a double
  // click reuses it, so the backend sends it once.
  $("composer").addEventListener("submit", function (e) {
    e.preventDefault();
    var chat = currentChat(), text = $("text").value.trim();
    if (!chat || !text || !state.session) return;
    if (!state.pending || state.pending.text !== text || state.pending.chat !== chat.chat_key) {
      if (state.pending && state.pending.inFlight) return;
      state.pending = { client_id: uuid(), text: text, chat: chat.chat_key };
    }
    if (state.pending.inFlight) return;
    var p = state.pending; p.inFlight = true;
    $("send").disabled = true; $("send-error").hidden = true;
    fetch("/api/live/chats/" + encodeURIComponent(chat.chat_key) + "/messages", {
      method: "POST", headers: { "content-type": "application/json", "x-live-session": state.session },
      body: JSON.stringify({ client_id: p.client_id, text: p.text })
    }).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        p.inFlight = false;
        if (r.status === 200 || r.status === 201) {
          state.pending = null;
          if ($("text").value.trim() === p.text) $("text").value = "";
          poll();
        } else {
          if (r.status !== 503) state.pending = null; // refused: a new attempt is a new message
          var err = $("send-error"); err.hidden = false;
          err.textContent = (body.error && (body.error.message || body.error.code)) || ("Not sent (" + r.status + ")");
        }
        renderWindow(chat);
      });
    }, function () {
      p.inFlight = false; renderWindow(chat);
      var err = $("send-error"); err.hidden = false; err.textContent = "Not sent: offline. Send again to retry.";
    });
  });
  $("text").addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); $("composer").requestSubmit(); }
  });

  var EMOJI = ["😊", "😂", "👍", "🙏", "❤️", "🎉", "👋", "😉", "🙂", "✅", "📅", "📞"];
  EMOJI.forEach(function (em) {
    var b = document.createElement("button"); b.type = "button"; b.textContent = em; b.setAttribute("aria-label", em);
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

  askToken();
  // A host that loads after us answers the first ask late or never: ask again.
  setTimeout(function () { if (!state.session && $("connect").hidden) askToken(); }, 1500);
})();
