//! Obtaining 50 roles at once (`generate_credentials` of 50 profiles) with
//! 20 ms of injected server latency on every AssumeRole, against one role
//! with the same latency, through the same session. Runs alternate.
//!
//! With a bounded worker pool of P threads the floor is ceil(50 / P)
//! waves of 20 ms; the default P is the session's default `parallelism`.
//! The same run also measures `parallelism(50)` as context.
//!
//! Target: 50 roles <= 3x one role.

#[path = "common/mod.rs"]
mod common;

use std::time::Duration;

use stslib::emulator::{Action, Emulator, Fault};
use stslib::{RefreshPolicy, Session};

use common::{dist, fmt_ns, pick, time_once, Stats};

const ROLES: usize = 50;
const DELAY: Duration = Duration::from_millis(20);

fn main() {
    common::header(
        "fanout",
        "50 roles vs 1 role, 20 ms injected AssumeRole latency each",
    );
    let emu = common::emulator(None);
    let names = common::role_names(ROLES);
    let one = &names[..1];

    let default = common::session(&emu, ROLES, RefreshPolicy::default());
    let wide = common::token(
        common::builder(&emu, ROLES)
            .parallelism(ROLES)
            .build()
            .expect("session"),
    );

    // Warm-up: connections, threads.
    common::assume(&default, &names);
    common::assume(&wide, &names);

    let reps = pick(12, 3);
    let (mut many, mut single, mut many_wide) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        let order: [u8; 3] = if rep % 2 == 0 { [0, 1, 2] } else { [2, 1, 0] };
        for which in order {
            match which {
                0 => many.push(timed(&emu, &default, &names)),
                1 => single.push(timed(&emu, &default, one)),
                _ => many_wide.push(timed(&emu, &wide, &names)),
            }
        }
    }
    drop((default, wide));
    emu.stop();

    let (many, single, many_wide) = (Stats::new(many), Stats::new(single), Stats::new(many_wide));
    dist("50 roles, default parallelism", &many);
    dist("50 roles, parallelism(50)", &many_wide);
    dist("1 role (baseline)", &single);
    let ratio = many.p50() / single.p50();
    common::context(&format!(
        "parallelism(50): {:.2}x one role (the default pool of 64 covers 50 roles in one wave)",
        many_wide.p50() / single.p50()
    ));
    common::target(
        "50 roles <= 3x one role",
        ratio <= 3.0,
        &format!(
            "{ratio:.2}x: {} vs {}",
            fmt_ns(many.p50()),
            fmt_ns(single.p50())
        ),
    );
    common::summary("fanout", many.p50(), ratio, "one role p50");
}

/// One `generate_credentials` of `names`, each AssumeRole delayed.
fn timed(emu: &Emulator, session: &Session, names: &[String]) -> f64 {
    emu.clear_faults();
    emu.inject(Action::AssumeRole, Fault::Delay(DELAY), names.len());
    let (t, ()) = time_once(|| common::assume(session, names));
    t
}
