//! What a soak prints: the counts that must be zero, then the figures
//! (cost per message, latency, throughput, where the time went).

use std::fmt;
use std::time::Duration;

use sandbox_kit::faults::FaultReport;

use super::check::Findings;
use super::plan::Crm;

/// One CRM's share of the run.
#[derive(Debug, Clone)]
pub struct CrmFigures {
    pub crm: Crm,
    pub messages: usize,
    /// API calls the sandbox received (faulted ones included).
    pub calls: usize,
    /// Note creates and updates among them.
    pub note_writes: usize,
    /// Pipedrive's tokens, from its usage counter (`None` for Zoho).
    pub tokens: Option<u64>,
    /// Access-token refreshes.
    pub refreshes: u64,
    pub faults: FaultReport,
}

/// Queue depths (visible and in flight) sampled while the run went on.
#[derive(Debug, Clone, Default)]
pub struct QueueSamples {
    samples: u64,
    sync_total: u64,
    notes_total: u64,
    pub sync_max: u64,
    pub notes_max: u64,
}

impl QueueSamples {
    pub fn add(&mut self, (sync, notes): (u64, u64)) {
        self.samples += 1;
        self.sync_total += sync;
        self.notes_total += notes;
        self.sync_max = self.sync_max.max(sync);
        self.notes_max = self.notes_max.max(notes);
    }

    fn mean(total: u64, samples: u64) -> f64 {
        total as f64 / samples.max(1) as f64
    }

    pub fn sync_mean(&self) -> f64 {
        Self::mean(self.sync_total, self.samples)
    }

    pub fn notes_mean(&self) -> f64 {
        Self::mean(self.notes_total, self.samples)
    }
}

#[derive(Debug, Clone)]
pub struct SoakReport {
    pub chats: usize,
    pub messages_per_chat: usize,
    pub fault_rate: f64,
    pub redeliver: u32,
    /// Webhook posts a second (0: unpaced).
    pub post_rate: f64,
    pub findings: Findings,
    pub deliveries: usize,
    pub posts: usize,
    /// Posts the webhook answered other than 200 (posted again).
    pub refused_posts: usize,
    /// Webhook → note line, each message, shortest first.
    pub latencies: Vec<Duration>,
    /// First post to the last line seen.
    pub busy: Duration,
    pub per_crm: Vec<CrmFigures>,
    pub revoked: bool,
    pub reconnected: Vec<Crm>,
    pub queues: QueueSamples,
    pub contract_violations: usize,
}

impl SoakReport {
    /// Every promise kept, and the sandboxes saw nothing outside the
    /// vendors' contracts.
    pub fn passed(&self) -> bool {
        self.findings.clean() && self.contract_violations == 0
    }

    /// The latency at or below which `percent` % of the messages landed.
    pub fn latency(&self, percent: usize) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = (self.latencies.len() * percent).div_ceil(100).max(1);
        self.latencies[rank.min(self.latencies.len()) - 1]
    }

    /// The queue the backlog waited on (the deeper one on average).
    pub fn bottleneck(&self) -> &'static str {
        if self.queues.notes_mean() > self.queues.sync_mean() {
            "the notes queue (note-append: one batch at a time, CRM calls in series)"
        } else {
            "the sync queue (record-sync: one batch at a time, searches and creates in series)"
        }
    }

    pub fn throughput(&self) -> f64 {
        self.latencies.len() as f64 / self.busy.as_secs_f64().max(0.001)
    }
}

impl SoakReport {
    /// The figures as `(figure, value)` rows for the benchmark's table
    /// (`--table`): the counts that must be 0, cost per message and per
    /// 1,000 messages, latency, throughput and where the backlog waited.
    pub fn rows(&self) -> Vec<(String, String)> {
        let found = &self.findings;
        let crms: Vec<&str> = self.per_crm.iter().map(|c| c.crm.name()).collect();
        let mut rows = vec![
            (
                "soak: run".to_owned(),
                format!(
                    "{} chats × {} messages ({}), {:.0} % CRM faults, each delivery posted 1–{} times, grants revoked mid-run: {}",
                    self.chats,
                    self.messages_per_chat,
                    crms.join(" + "),
                    self.fault_rate * 100.0,
                    self.redeliver,
                    if self.revoked { "yes" } else { "no" },
                ),
            ),
            ("soak: messages".to_owned(), found.messages.to_string()),
            (
                "soak: lost / duplicated / out of order".to_owned(),
                format!(
                    "{} / {} / {}",
                    found.lost, found.duplicates, found.out_of_order
                ),
            ),
            (
                "soak: chats without one record / extra day notes / dead-lettered / ledger disagreements".to_owned(),
                format!(
                    "{} / {} / {} / {}",
                    found.chats_without_one_record,
                    found.extra_day_notes,
                    found.dead_lettered,
                    found.ledger_disagrees
                ),
            ),
        ];
        for crm in &self.per_crm {
            let per = |n: usize| n as f64 / crm.messages.max(1) as f64;
            rows.push((
                format!("soak: {} calls per message", crm.crm.name()),
                format!(
                    "{:.2} ({:.2} note writes per message; {} calls for {} messages)",
                    per(crm.calls),
                    per(crm.note_writes),
                    crm.calls,
                    crm.messages
                ),
            ));
            // Zoho counts credits per call (1 each for every call the sync
            // makes here; Convert Lead's 5 does not occur in the soak);
            // Pipedrive's tokens are read from its usage counter.
            let (unit, spent) = match crm.tokens {
                Some(tokens) => ("tokens", tokens as f64),
                None => ("credits", crm.calls as f64),
            };
            rows.push((
                format!("soak: {} {unit} per 1,000 messages", crm.crm.name()),
                format!("{:.0}", spent * 1000.0 / crm.messages.max(1) as f64),
            ));
        }
        rows.push((
            "soak: latency webhook → note line".to_owned(),
            format!(
                "p50 {}, p95 {}, p99 {} (all deliveries posted at once: queue wait included)",
                secs(self.latency(50)),
                secs(self.latency(95)),
                secs(self.latency(99))
            ),
        ));
        let (sync, notes) = (self.queues.sync_mean(), self.queues.notes_mean());
        rows.push((
            "soak: throughput".to_owned(),
            format!(
                "{:.2} messages/s with 0 lost; backlog mean depth sync {sync:.1}, notes {notes:.1} → it waits on {}",
                self.throughput(),
                self.bottleneck()
            ),
        ));
        rows
    }
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

impl fmt::Display for SoakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let found = &self.findings;
        writeln!(
            f,
            "soak: {} chats × {} messages, {:.0} % CRM faults, each delivery posted 1–{} times",
            self.chats,
            self.messages_per_chat,
            self.fault_rate * 100.0,
            self.redeliver
        )?;
        if self.post_rate > 0.0 {
            writeln!(
                f,
                "  posted at               {:.1} webhook posts/s",
                self.post_rate
            )?;
        } else {
            writeln!(f, "  posted at               once (8 posts at a time)")?;
        }
        writeln!(f, "  messages                {}", found.messages)?;
        writeln!(
            f,
            "  deliveries              {} ({} posts, {} redelivered copies, {} refused and posted again)",
            self.deliveries,
            self.posts,
            self.posts - self.deliveries,
            self.refused_posts
        )?;
        for (name, value) in [
            ("lost", found.lost as u64),
            ("duplicates", found.duplicates as u64),
            ("out of order", found.out_of_order as u64),
            ("extra day notes", found.extra_day_notes as u64),
            (
                "chats without 1 record",
                found.chats_without_one_record as u64,
            ),
            ("lines on another record", found.misplaced as u64),
            ("ledger disagrees", found.ledger_disagrees as u64),
            ("dead-lettered", found.dead_lettered),
            ("contract violations", self.contract_violations as u64),
        ] {
            writeln!(f, "  {name:<24}{value}")?;
        }
        for sample in &found.ledger_samples {
            writeln!(f, "    ledger: {sample}")?;
        }
        writeln!(
            f,
            "  grants revoked mid-run: {}; reconnected through OAuth: {}",
            if self.revoked { "yes" } else { "no" },
            if self.reconnected.is_empty() {
                "none".to_owned()
            } else {
                self.reconnected
                    .iter()
                    .map(|c| c.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        )?;
        for crm in &self.per_crm {
            let per = |n: f64| n / crm.messages.max(1) as f64;
            let tokens = crm.tokens.map_or(String::new(), |t| {
                format!(", {t} tokens ({:.2} per message)", per(t as f64))
            });
            writeln!(
                f,
                "  {:<10} {} messages: {} CRM calls ({:.2} per message), {} note writes ({:.2} per message){}, {} token refreshes",
                crm.crm.name(),
                crm.messages,
                crm.calls,
                per(crm.calls as f64),
                crm.note_writes,
                per(crm.note_writes as f64),
                tokens,
                crm.refreshes
            )?;
            let kinds: Vec<String> = crm
                .faults
                .injected
                .iter()
                .map(|(kind, n)| {
                    // As the fault plan names it: `429-no-retry-after`, …
                    let name = serde_json::to_value(kind)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default();
                    format!("{n} × {name}")
                })
                .collect();
            writeln!(
                f,
                "  {:<10} faults injected: {} of {} calls ({})",
                "",
                crm.faults.total(),
                crm.faults.calls,
                kinds.join(", ")
            )?;
        }
        writeln!(
            f,
            "  latency webhook → note line: p50 {}, p95 {}, p99 {} ({} messages)",
            secs(self.latency(50)),
            secs(self.latency(95)),
            secs(self.latency(99)),
            self.latencies.len()
        )?;
        writeln!(
            f,
            "  throughput              {:.2} messages/s ({} from the first post to the last line)",
            self.throughput(),
            secs(self.busy)
        )?;
        let (sync, notes) = (self.queues.sync_mean(), self.queues.notes_mean());
        let where_ = self.bottleneck();
        writeln!(
            f,
            "  queues (mean/max depth): sync {sync:.1}/{}, notes {notes:.1}/{} → the backlog waits on {where_}",
            self.queues.sync_max, self.queues.notes_max
        )?;
        write!(
            f,
            "  result: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        )
    }
}
