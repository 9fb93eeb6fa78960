//! The soak, with figures: `cargo run -p e2e --bin soak -- [--chats 100
//! --messages 20 --fault-rate 0.2 --redeliver 3 --crm zoho|pipedrive|both
//! --seed N --post-rate POSTS_PER_S --stall-secs S --no-revoke --table]`.
//! `--table`: the report goes to stderr and its figures to stdout as rows
//! `| figure | value | how |` (the benchmark command's table). Starts its
//! own local system (the stack must be running: `infra/local/stack.sh
//! start`, `. .local/stack.env`), prints what it found, and exits non-zero
//! if a message was lost, duplicated or out of order, or any other promise
//! was broken.

use std::process::ExitCode;

use e2e::soak::{Crm, SoakOptions, run};

fn parse(args: &[String]) -> Result<(SoakOptions, bool), String> {
    let mut options = SoakOptions::default();
    let mut table = false;
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        if flag == "--no-revoke" {
            options.revoke_mid_run = false;
            continue;
        }
        if flag == "--table" {
            table = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--chats" => options.chats = value.parse().map_err(|e| bad(&e))?,
            "--messages" => options.messages = value.parse().map_err(|e| bad(&e))?,
            "--fault-rate" => options.fault_rate = value.parse().map_err(|e| bad(&e))?,
            "--redeliver" => options.redeliver = value.parse().map_err(|e| bad(&e))?,
            "--seed" => options.seed = value.parse().map_err(|e| bad(&e))?,
            "--stall-secs" => options.stall_secs = value.parse().map_err(|e| bad(&e))?,
            "--post-rate" => options.post_rate = value.parse().map_err(|e| bad(&e))?,
            "--crm" => {
                options.crms = match value.as_str() {
                    "zoho" => vec![Crm::Zoho],
                    "pipedrive" => vec![Crm::Pipedrive],
                    "both" => vec![Crm::Zoho, Crm::Pipedrive],
                    _ => return Err(bad(&"expected zoho, pipedrive or both")),
                }
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if options.chats == 0 || options.messages == 0 || options.redeliver == 0 {
        return Err("--chats, --messages and --redeliver must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&options.fault_rate) {
        return Err("--fault-rate must be between 0 and 1".into());
    }
    Ok((options, table))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (options, table) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("soak: {message}");
            return ExitCode::from(2);
        }
    };
    let report = run(&options).await;
    if table {
        eprintln!("{report}");
        let how = format!("cargo run -p e2e --bin soak -- {}", args.join(" "));
        for (figure, value) in report.rows() {
            println!("| {figure} | {value} | {how} |");
        }
    } else {
        println!("{report}");
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
