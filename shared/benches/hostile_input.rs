//! The hostile-input run: the properties of `tests/hostile_input.rs`, many
//! more cases, and a table of what came of them.
//!
//! `cargo bench -p shared --bench hostile_input [-- --cases N] [--seed S]`:
//! N generated cases in all (default 100,000), shared evenly by the
//! targets, on two threads. Each row: cases, panics, writes or sends made
//! without a valid signature or state, refusals that are not a clear 4xx,
//! other properties broken, and the answers given. Exits 1 if any count
//! but cases is not 0. Under `cargo test` (no `--bench` argument) it runs
//! 8 cases a target, so it keeps building and running.

#[path = "../tests/hostile/mod.rs"]
mod hostile;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use hostile::{Checked, LAST_STATUS, Violation, api, notes, oauth, phone, webhook};
use proptest::strategy::{BoxedStrategy, Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

#[derive(Default)]
struct Tally {
    cases: u64,
    panics: u64,
    stored_unsigned: u64,
    unclear_refusals: u64,
    other: u64,
    /// Answers by status (HTTP targets only).
    statuses: BTreeMap<u16, u64>,
    /// The first few failures, to show.
    examples: Vec<String>,
    elapsed: Duration,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.cases += other.cases;
        self.panics += other.panics;
        self.stored_unsigned += other.stored_unsigned;
        self.unclear_refusals += other.unclear_refusals;
        self.other += other.other;
        for (status, n) in other.statuses {
            *self.statuses.entry(status).or_default() += n;
        }
        self.examples.extend(other.examples);
        self.examples.truncate(3);
    }

    fn failed(&self) -> bool {
        self.panics + self.stored_unsigned + self.unclear_refusals + self.other > 0
    }
}

trait Target: Sync {
    fn name(&self) -> &'static str;
    /// `cases` generated from `seed`.
    fn run(&self, cases: u64, seed: u64) -> Tally;
}

struct Property<T> {
    name: &'static str,
    strategy: fn() -> BoxedStrategy<T>,
    check: fn(&T) -> Checked,
}

thread_local! {
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

impl<T: std::fmt::Debug> Target for Property<T> {
    fn name(&self) -> &'static str {
        self.name
    }

    fn run(&self, cases: u64, seed: u64) -> Tally {
        let mut seed_bytes = [0u8; 32];
        seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes);
        let mut runner = TestRunner::new_with_rng(Config::default(), rng);
        let strategy = (self.strategy)();
        let mut tally = Tally::default();
        let started = Instant::now();
        for _ in 0..cases {
            let Ok(tree) = strategy.new_tree(&mut runner) else {
                continue;
            };
            let input = tree.current();
            LAST_STATUS.with(|s| s.set(0));
            let outcome = catch_unwind(AssertUnwindSafe(|| (self.check)(&input)));
            tally.cases += 1;
            let status = LAST_STATUS.with(std::cell::Cell::get);
            if status != 0 {
                *tally.statuses.entry(status).or_default() += 1;
            }
            let failure = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(violation)) => {
                    match &violation {
                        Violation::StoredWithoutSignature(_) => tally.stored_unsigned += 1,
                        Violation::NotClearRefusal { .. } => tally.unclear_refusals += 1,
                        Violation::Property(_) => tally.other += 1,
                    }
                    Some(violation.to_string())
                }
                Err(_) => {
                    tally.panics += 1;
                    Some(format!(
                        "panic: {}",
                        PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default()
                    ))
                }
            };
            if let Some(failure) = failure
                && tally.examples.len() < 3
            {
                let input: String = format!("{input:?}").chars().take(400).collect();
                tally
                    .examples
                    .push(format!("{failure}\n      input: {input}"));
            }
        }
        tally.elapsed = started.elapsed();
        tally
    }
}

fn targets() -> Vec<Box<dyn Target>> {
    vec![
        Box::new(Property {
            name: "webhook: no valid signature",
            strategy: || webhook::unsigned().boxed(),
            check: webhook::check_unsigned,
        }),
        Box::new(Property {
            name: "webhook: signed, malformed",
            strategy: || webhook::signed_body().boxed(),
            check: |body: &Vec<u8>| webhook::check_signed(body),
        }),
        Box::new(Property {
            name: "webhook: valid, every type",
            strategy: || webhook::delivery().boxed(),
            check: webhook::check_delivery,
        }),
        Box::new(Property {
            name: "phone normaliser",
            strategy: || phone::raw_number().boxed(),
            check: |raw: &String| phone::check(raw),
        }),
        Box::new(Property {
            name: "note: Pipedrive HTML",
            strategy: || notes::draft().boxed(),
            check: notes::check_pipedrive_html,
        }),
        Box::new(Property {
            name: "note: parts and cuts",
            strategy: || notes::day().boxed(),
            check: notes::check_day,
        }),
        Box::new(Property {
            name: "OAuth callback",
            strategy: || oauth::callback().boxed(),
            check: oauth::check,
        }),
        Box::new(Property {
            name: "API JSON bodies",
            strategy: || api::call().boxed(),
            check: api::check,
        }),
    ]
}

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.replace('_', "").parse().ok())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bench = args.iter().any(|a| a == "--bench");
    let targets = targets();
    let total = arg(&args, "--cases").unwrap_or(if bench {
        100_000
    } else {
        8 * targets.len() as u64
    });
    let per_target = total.div_ceil(targets.len() as u64);
    let seed = arg(&args, "--seed").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    // A panic is counted, its message kept, nothing printed mid-table.
    std::panic::set_hook(Box::new(|info| {
        PANIC.with(|p| *p.borrow_mut() = Some(info.to_string()));
    }));
    let caught = catch_unwind(|| panic!("probe")).is_err();
    println!(
        "hostile input: {per_target} cases × {} targets, seed {seed}, 2 threads{}",
        targets.len(),
        if caught {
            ", panics caught and counted"
        } else {
            ""
        }
    );
    // The shared harness (runtime, Graph sandbox) is started before the clock.
    hostile::harness();
    println!(
        "{:<28} {:>8} {:>7} {:>15} {:>16} {:>6} {:>8}  answers",
        "target", "cases", "panics", "stored unsigned", "non-4xx refusals", "other", "time"
    );
    let mut failed = false;
    let mut grand = Tally::default();
    let started = Instant::now();
    for (i, target) in targets.iter().enumerate() {
        let halves = [per_target / 2, per_target - per_target / 2];
        let mut tally = Tally::default();
        std::thread::scope(|scope| {
            let runs: Vec<_> = halves
                .iter()
                .enumerate()
                .map(|(half, cases)| {
                    let seed = seed.wrapping_mul(31).wrapping_add((i * 2 + half) as u64);
                    scope.spawn(move || target.run(*cases, seed))
                })
                .collect();
            for run in runs {
                match run.join() {
                    Ok(part) => {
                        let elapsed = part.elapsed;
                        tally.add(part);
                        tally.elapsed = tally.elapsed.max(elapsed);
                    }
                    Err(_) => tally.panics += 1,
                }
            }
        });
        let answers: Vec<String> = tally
            .statuses
            .iter()
            .map(|(status, n)| format!("{status}×{n}"))
            .collect();
        println!(
            "{:<28} {:>8} {:>7} {:>15} {:>16} {:>6} {:>7.1}s  {}",
            target.name(),
            tally.cases,
            tally.panics,
            tally.stored_unsigned,
            tally.unclear_refusals,
            tally.other,
            tally.elapsed.as_secs_f64(),
            answers.join(" ")
        );
        for example in &tally.examples {
            println!("    {example}");
        }
        failed |= tally.failed();
        let elapsed = tally.elapsed;
        grand.add(tally);
        grand.elapsed += elapsed;
    }
    println!(
        "{:<28} {:>8} {:>7} {:>15} {:>16} {:>6} {:>7.1}s",
        "total",
        grand.cases,
        grand.panics,
        grand.stored_unsigned,
        grand.unclear_refusals,
        grand.other,
        started.elapsed().as_secs_f64()
    );
    if failed {
        std::process::exit(1);
    }
}
