//! What the nested lanes' test binaries share (`tests/tests/kvm_lane.rs`,
//! `tests/tests/vfio_lane.rs`; `harness = false`, run by libtest-mimic so that a switched-off
//! lane's tests are reported as *ignored*, with the reason, instead of passing).

use libtest_mimic::{Arguments, Completion, Trial};
use tests::kvm::Nesting;

/// A lane test: its name and its body, which panics with the reason when the test fails.
pub type LaneTest = (&'static str, fn());

/// The test binary's `main`: runs `tests` with libtest's usual options and filters. When the
/// lane is switched off ([`Nesting::skipped`]) every test is reported ignored with the reason
/// and counted as such in `test result:`, never as passed. `not_yet` are tests that cannot run
/// yet, each with the reason, likewise reported ignored.
pub fn main(nesting: Nesting, tests: &[LaneTest], not_yet: &[(&'static str, &'static str)]) -> ! {
    let args = Arguments::from_args();
    let skipped = nesting.skipped();
    if let Some(why) = &skipped {
        eprintln!(
            "{} lane SKIPPED ({why}): its {} tests are reported as ignored",
            nesting.name(),
            tests.len()
        );
    }
    let mut trials: Vec<Trial> = tests
        .iter()
        .map(|&(name, body)| {
            let skipped = skipped.clone();
            Trial::ignorable_test(name, move || match skipped {
                Some(why) => Ok(Completion::ignored_with(why)),
                None => {
                    body();
                    Ok(Completion::Completed)
                }
            })
        })
        .collect();
    trials.extend(
        not_yet
            .iter()
            .map(|&(name, why)| Trial::ignorable_test(name, move || Ok(Completion::ignored_with(why)))),
    );
    libtest_mimic::run(&args, trials).exit()
}
