//! A pool's quotas, and what its placed tasks hold against them.
//!
//! Quotas bound a pool as a whole (tasks placed at once, CPU and memory they
//! reserve) and each tenant within it (tasks placed at once). A placed task
//! counts from its placement until it ends, whatever node it is on, so a
//! quota caps the pool's share of shared nodes, not any node's load.

use std::collections::HashMap;
use taskyard_wire::Resources;
use taskyard_wire::pool::PoolSpec;

/// The limits a pool sets; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Most tasks placed in the pool at once.
    pub max_running: Option<u32>,
    /// Most CPU (millicores) the pool's placed tasks reserve together.
    pub max_cpu_millis: Option<u32>,
    /// Most memory (MiB) the pool's placed tasks reserve together.
    pub max_memory_mb: Option<u32>,
    /// Most tasks of one tenant placed in the pool at once.
    pub tenant_max_running: Option<u32>,
}

impl Quotas {
    /// Whether no quota is set: then nothing is ever refused, and the
    /// round need not ask for each task a policy offers.
    pub fn is_unlimited(&self) -> bool {
        *self == Quotas::default()
    }

    /// The quotas a pool definition sets.
    pub fn of(pool: &PoolSpec) -> Quotas {
        Quotas {
            max_running: pool.max_running,
            max_cpu_millis: pool.max_cpu_millis,
            max_memory_mb: pool.max_memory_mb,
            tenant_max_running: pool.tenant_max_running,
        }
    }
}

/// Why a quota holds a task back now. [`Refusal::describe`] words it for
/// the task's waiting reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The pool runs `max` tasks already.
    PoolRunning { max: u32 },
    /// The task's CPU would take the pool past `max` (`in_use` now).
    PoolCpu { max: u32, in_use: u64 },
    /// The task's memory would take the pool past `max` (`in_use` now).
    PoolMemory { max: u32, in_use: u64 },
    /// The task's tenant runs `max` tasks in the pool already.
    TenantRunning { tenant: String, max: u32 },
}

impl Refusal {
    /// The refusal in words, for a task of `pool`.
    pub fn describe(&self, pool: &str) -> String {
        match self {
            Refusal::PoolRunning { max } => {
                format!("pool {pool} is at its limit of {max} running tasks")
            }
            Refusal::PoolCpu { max, in_use } => format!(
                "pool {pool} would exceed its limit of {max}m cpu in use ({in_use}m in use)"
            ),
            Refusal::PoolMemory { max, in_use } => format!(
                "pool {pool} would exceed its limit of {max} MiB in use ({in_use} MiB in use)"
            ),
            Refusal::TenantRunning { tenant, max } => {
                format!("tenant {tenant} is at its limit of {max} running tasks in pool {pool}")
            }
        }
    }
}

/// What a pool's placed tasks hold, against its quotas.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    running: u32,
    cpu_millis: u64,
    memory_mb: u64,
    /// Placed tasks per tenant; a tenant with none has no entry, so that
    /// tenants that come and go leave nothing behind.
    per_tenant: HashMap<String, u32>,
}

impl Usage {
    /// Tasks placed in the pool now.
    pub fn running(&self) -> u32 {
        self.running
    }

    /// CPU its placed tasks reserve, in millicores.
    pub fn cpu_millis(&self) -> u64 {
        self.cpu_millis
    }

    /// Memory its placed tasks reserve, in MiB.
    pub fn memory_mb(&self) -> u64 {
        self.memory_mb
    }

    /// Tasks of `tenant` placed in the pool now.
    pub fn tenant_running(&self, tenant: &str) -> u32 {
        self.per_tenant.get(tenant).copied().unwrap_or(0)
    }

    /// Counts a task of `tenant` placed with `resources`.
    pub fn add(&mut self, tenant: &str, resources: &Resources) {
        self.running = self.running.saturating_add(1);
        self.cpu_millis = self
            .cpu_millis
            .saturating_add(u64::from(resources.cpu_millis));
        self.memory_mb = self
            .memory_mb
            .saturating_add(u64::from(resources.memory_mb));
        // Looked up first: a key is allocated only for a tenant's first
        // placed task, not for every placement.
        match self.per_tenant.get_mut(tenant) {
            Some(count) => *count = count.saturating_add(1),
            None => {
                self.per_tenant.insert(tenant.to_owned(), 1);
            }
        }
    }

    /// Stops counting a task that [`Usage::add`] counted. Saturates rather
    /// than underflows: a release the usage never saw (an event for a
    /// placement of an earlier life) must not wrap a count round.
    pub fn remove(&mut self, tenant: &str, resources: &Resources) {
        self.running = self.running.saturating_sub(1);
        self.cpu_millis = self
            .cpu_millis
            .saturating_sub(u64::from(resources.cpu_millis));
        self.memory_mb = self
            .memory_mb
            .saturating_sub(u64::from(resources.memory_mb));
        if let Some(count) = self.per_tenant.get_mut(tenant) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                self.per_tenant.remove(tenant);
            }
        }
    }

    /// Why the pool as a whole takes no more now, if it does not: no task,
    /// however small, could go.
    pub fn pool_full(&self, quotas: &Quotas) -> Option<Refusal> {
        match quotas.max_running {
            Some(max) if self.running >= max => Some(Refusal::PoolRunning { max }),
            _ => None,
        }
    }

    /// Why a task of `tenant` asking for `resources` may not be placed now,
    /// if it may not. The pool's cap comes first, then CPU, memory and the
    /// tenant's cap, so that the reason a task shows is the broadest.
    pub fn refuses(&self, quotas: &Quotas, tenant: &str, resources: &Resources) -> Option<Refusal> {
        if let Some(refusal) = self.pool_full(quotas) {
            return Some(refusal);
        }
        if let Some(max) = quotas.max_cpu_millis
            && self.cpu_millis + u64::from(resources.cpu_millis) > u64::from(max)
        {
            return Some(Refusal::PoolCpu {
                max,
                in_use: self.cpu_millis,
            });
        }
        if let Some(max) = quotas.max_memory_mb
            && self.memory_mb + u64::from(resources.memory_mb) > u64::from(max)
        {
            return Some(Refusal::PoolMemory {
                max,
                in_use: self.memory_mb,
            });
        }
        if let Some(max) = quotas.tenant_max_running
            && self.tenant_running(tenant) >= max
        {
            return Some(Refusal::TenantRunning {
                tenant: tenant.to_owned(),
                max,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn res(cpu_millis: u32, memory_mb: u32) -> Resources {
        Resources {
            cpu_millis,
            memory_mb,
        }
    }

    #[test]
    fn no_quotas_refuse_nothing() {
        let mut usage = Usage::default();
        for _ in 0..1000 {
            usage.add("t", &res(u32::MAX, u32::MAX));
        }
        assert_eq!(usage.refuses(&Quotas::default(), "t", &res(1, 1)), None);
    }

    #[test]
    fn each_quota_refuses_in_its_own_words() {
        let mut usage = Usage::default();
        usage.add("a", &res(600, 300));
        let quotas = |q: Quotas| usage.refuses(&q, "a", &res(500, 800));
        let words = |q: Quotas| quotas(q).map(|r| r.describe("p"));
        assert_eq!(
            words(Quotas {
                max_running: Some(1),
                ..Quotas::default()
            })
            .as_deref(),
            Some("pool p is at its limit of 1 running tasks")
        );
        assert_eq!(
            words(Quotas {
                max_cpu_millis: Some(1000),
                ..Quotas::default()
            })
            .as_deref(),
            Some("pool p would exceed its limit of 1000m cpu in use (600m in use)")
        );
        assert_eq!(
            words(Quotas {
                max_memory_mb: Some(1000),
                ..Quotas::default()
            })
            .as_deref(),
            Some("pool p would exceed its limit of 1000 MiB in use (300 MiB in use)")
        );
        assert_eq!(
            words(Quotas {
                tenant_max_running: Some(1),
                ..Quotas::default()
            })
            .as_deref(),
            Some("tenant a is at its limit of 1 running tasks in pool p")
        );
        // Another tenant is not held back by a's cap; exactly at a limit is
        // within it.
        let tenant_cap = Quotas {
            tenant_max_running: Some(1),
            max_cpu_millis: Some(1100),
            ..Quotas::default()
        };
        assert_eq!(usage.refuses(&tenant_cap, "b", &res(500, 0)), None);
    }

    #[test]
    fn a_release_it_never_saw_does_not_wrap() {
        let mut usage = Usage::default();
        usage.remove("ghost", &res(100, 100));
        assert_eq!(usage, Usage::default());
        usage.add("a", &res(100, 100));
        usage.remove("a", &res(100, 100));
        assert_eq!(
            usage,
            Usage::default(),
            "a tenant with none leaves no entry"
        );
    }

    proptest! {
        /// After any adds and removes, a task is refused exactly when
        /// placing it would take the pool or its tenant past a limit: the
        /// quotas hold as invariants for whoever only places what they
        /// admit.
        #[test]
        fn refuses_exactly_what_would_break_a_limit(
            ops in proptest::collection::vec((0usize..3, 0u32..2000, 0u32..2000, proptest::bool::ANY), 0..40),
            max_running in proptest::option::of(0u32..8),
            max_cpu in proptest::option::of(0u32..6000),
            max_memory in proptest::option::of(0u32..6000),
            tenant_max in proptest::option::of(0u32..4),
            ask in (0usize..3, 0u32..2000, 0u32..2000),
        ) {
            let quotas = Quotas {
                max_running,
                max_cpu_millis: max_cpu,
                max_memory_mb: max_memory,
                tenant_max_running: tenant_max,
            };
            let tenants = ["a", "b", "c"];
            let mut usage = Usage::default();
            let mut placed: Vec<(usize, Resources)> = Vec::new();
            for (tenant, cpu, memory, add) in ops {
                if add || placed.is_empty() {
                    usage.add(tenants[tenant], &res(cpu, memory));
                    placed.push((tenant, res(cpu, memory)));
                } else {
                    let (tenant, resources) = placed.remove(0);
                    usage.remove(tenants[tenant], &resources);
                }
            }
            let running = placed.len() as u64;
            let cpu: u64 = placed.iter().map(|(_, r)| u64::from(r.cpu_millis)).sum();
            let memory: u64 = placed.iter().map(|(_, r)| u64::from(r.memory_mb)).sum();
            let (tenant, ask_cpu, ask_memory) = ask;
            let of_tenant = placed.iter().filter(|(t, _)| *t == tenant).count() as u64;
            prop_assert_eq!(u64::from(usage.running()), running);
            prop_assert_eq!(usage.cpu_millis(), cpu);
            prop_assert_eq!(usage.memory_mb(), memory);
            let breaks = max_running.is_some_and(|max| running + 1 > u64::from(max))
                || max_cpu.is_some_and(|max| cpu + u64::from(ask_cpu) > u64::from(max))
                || max_memory.is_some_and(|max| memory + u64::from(ask_memory) > u64::from(max))
                || tenant_max.is_some_and(|max| of_tenant + 1 > u64::from(max));
            let refused = usage.refuses(&quotas, tenants[tenant], &res(ask_cpu, ask_memory));
            prop_assert_eq!(refused.is_some(), breaks, "{:?}", refused);
        }
    }
}
