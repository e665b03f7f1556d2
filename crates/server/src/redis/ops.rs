//! The Redis side's context: the controller context plus what only Redis operations share
//! (failover state, Redis metrics). Built once by the composition root.

use crate::orchestration::controller::Controller;
use crate::redis::metrics::Metrics;
use crate::redis::state::FailoverState;
use std::sync::Arc;

/// What every Redis operation may use.
pub struct Ops {
    /// The controller context (store, runtime, pod table).
    pub ctl: Arc<Controller>,
    /// Pod exits, stuck failovers and failover pauses, shared by the failover tasks, the
    /// restart hooks and the operations that move a master on purpose.
    pub failover: Arc<FailoverState>,
    /// Prometheus counters (failovers, errors); instance gauges are read at scrape time.
    pub metrics: Metrics,
}

impl Ops {
    /// A context over `ctl` with fresh state.
    pub fn new(ctl: Arc<Controller>) -> Arc<Ops> {
        Arc::new(Ops {
            ctl,
            failover: Arc::new(FailoverState::default()),
            metrics: Metrics::new(),
        })
    }
}
