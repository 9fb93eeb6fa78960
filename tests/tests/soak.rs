//! The small soak of the test command: 10 chats × 6 messages on each CRM,
//! 20 % of CRM calls failing (every kind of fault), each delivery posted up
//! to three times, concurrently and out of order, the grants revoked
//! half-way and reconnected. Counts only; the figures are the `soak`
//! binary's.

use e2e::soak::{SoakOptions, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_soak_under_faults_and_redelivery_loses_duplicates_and_reorders_nothing() {
    let report = run(&SoakOptions::small()).await;
    println!("{report}");
    let found = &report.findings;
    assert_eq!(found.messages, 120);
    assert_eq!(found.lost, 0, "{report}");
    assert_eq!(found.duplicates, 0, "{report}");
    assert_eq!(found.out_of_order, 0, "{report}");
    assert_eq!(found.extra_day_notes, 0, "{report}");
    assert_eq!(found.chats_without_one_record, 0, "{report}");
    assert_eq!(found.misplaced, 0, "{report}");
    assert_eq!(found.ledger_disagrees, 0, "{report}");
    assert_eq!(found.dead_lettered, 0, "{report}");
    assert_eq!(report.contract_violations, 0, "{report}");
    assert!(report.revoked, "the grants were revoked mid-run");
    for crm in &report.per_crm {
        assert!(
            crm.faults.total() > 0,
            "faults reached {:?}: {report}",
            crm.crm
        );
    }
}
