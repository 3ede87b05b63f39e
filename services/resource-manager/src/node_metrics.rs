//! Node capacity, usage and health as metrics, from the heartbeats the
//! registry sees: what a dashboard of the fleet draws.

use crate::registry::Registry;
use taskyard_store::nodes::Health;
use taskyard_wire::heartbeat::Heartbeat;

/// Sets each node's capacity and usage gauges from its latest heartbeat.
pub fn record_heartbeats(beats: &[Heartbeat]) {
    for beat in beats {
        let node = || [("node", beat.node_id.clone())];
        metrics::gauge!("taskyard_node_cpu_capacity_millis", &node())
            .set(f64::from(beat.capacity.cpu_millis));
        metrics::gauge!("taskyard_node_memory_capacity_mb", &node())
            .set(f64::from(beat.capacity.memory_mb));
        metrics::gauge!("taskyard_node_slots", &node()).set(f64::from(beat.capacity.slots));
        metrics::gauge!("taskyard_node_cpu_used_percent", &node())
            .set(f64::from(beat.usage.cpu_percent));
        metrics::gauge!("taskyard_node_memory_used_mb", &node())
            .set(beat.usage.memory_used_mb as f64);
        metrics::gauge!("taskyard_node_running_tasks", &node()).set(f64::from(beat.running));
    }
}

/// Sets how many nodes are alive, suspect and lost.
pub fn record_health(registry: &Registry) {
    for health in [Health::Alive, Health::Suspect, Health::Lost] {
        metrics::gauge!("taskyard_nodes", "health" => health.as_str())
            .set(registry.count_with(health) as f64);
    }
}
