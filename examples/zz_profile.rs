//! temp
use wherefore::{Cancelled, Nursery};
fn main() {
    for _ in 0..3 {
        wherefore::run(wherefore::nursery(async |s: Nursery<'_, Cancelled>| {
            for _ in 0..100_000 {
                s.spawn(wherefore::checkpoint()).unwrap();
            }
            Ok(())
        }))
        .unwrap();
    }
}
