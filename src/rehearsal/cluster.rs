//! The cluster the guide builds, and how many storefront pods its VM nodes hold.
//!
//! The node size and count come from the guide's `az aks create` command (`--node-vm-size`,
//! `--node-count`, `--max-pods`, `--network-plugin`, `--network-policy`, `--enable-keda`). The
//! cluster autoscaler's `--max-count` does not raise the count during the surge: it adds a VM only
//! for a pod that stays Pending, and a pod that tolerates the virtual node never does (the
//! virtual node always has room).
//!
//! What a VM node can give pods is its allocatable capacity, as AKS documents it ("Node resource
//! reservations", <https://learn.microsoft.com/azure/aks/node-resource-reservations>, AKS 1.29
//! and later):
//! - CPU: kube-reserved of 60, 100, 140, 180, 260, 420 or 740 millicores for 1, 2, 4, 8, 16, 32
//!   or 64 cores;
//! - memory: kube-reserved of the lesser of 20 MB per pod the node may hold plus 50 MB, and 25% of
//!   the memory; plus the kubelet's eviction threshold, 100 Mi. (MB are counted as MiB here.)
//!
//! minus the requests of the system pods already there. Those depend on the cluster's add-ons and
//! AKS version; [`SYSTEM_PODS`] is an estimate for the guide's cluster (each entry says where its
//! figure comes from), and `--system-cpu` / `--system-memory` replace it with what `kubectl
//! describe node` shows on a real node.

use std::collections::BTreeMap;

use serde::Serialize;

/// VM sizes the guide may name: vCPUs and GiB of memory (Azure's size tables).
const VM_SIZES: &[(&str, u32, f64)] = &[
    ("Standard_B2s", 2, 4.0),
    ("Standard_B2ms", 2, 8.0),
    ("Standard_B4ms", 4, 16.0),
    ("Standard_DS2_v2", 2, 7.0),
    ("Standard_DS3_v2", 4, 14.0),
    ("Standard_DS4_v2", 8, 28.0),
    ("Standard_D2s_v3", 2, 8.0),
    ("Standard_D4s_v3", 4, 16.0),
    ("Standard_D8s_v3", 8, 32.0),
    ("Standard_D2s_v5", 2, 8.0),
    ("Standard_D4s_v5", 4, 16.0),
    ("Standard_D8s_v5", 8, 32.0),
    ("Standard_D16s_v5", 16, 64.0),
    ("Standard_D2as_v5", 2, 8.0),
    ("Standard_D4as_v5", 4, 16.0),
    ("Standard_D8as_v5", 8, 32.0),
    ("Standard_D2ds_v5", 2, 8.0),
    ("Standard_D4ds_v5", 4, 16.0),
    ("Standard_D8ds_v5", 8, 32.0),
    ("Standard_E2s_v5", 2, 16.0),
    ("Standard_E4s_v5", 4, 32.0),
    ("Standard_F2s_v2", 2, 4.0),
    ("Standard_F4s_v2", 4, 8.0),
    ("Standard_F8s_v2", 8, 16.0),
];

/// AKS's kube-reserved CPU by core count (the documented table).
const KUBE_RESERVED_CPU_M: &[(u32, u64)] = &[
    (1, 60),
    (2, 100),
    (4, 140),
    (8, 180),
    (16, 260),
    (32, 420),
    (64, 740),
];
/// The kubelet's hard eviction threshold on AKS (`memory.available<100Mi`).
const EVICTION_MIB: f64 = 100.0;

/// When a system pod runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When {
    Always,
    /// Azure CNI (any mode).
    AzureCni,
    /// `--network-policy azure`.
    AzureNetworkPolicy,
    /// `--enable-keda`.
    Keda,
    /// The virtual node add-on.
    VirtualNode,
}

/// One system workload's requests.
#[derive(Clone, Copy, Debug)]
pub struct SystemPod {
    pub name: &'static str,
    /// Replicas; 0 for a DaemonSet (one per node).
    pub replicas: u32,
    pub cpu_m: u64,
    pub memory_mib: f64,
    pub when: When,
    pub source: &'static str,
}

/// The system pods' requests on the guide's cluster (AKS 1.30, Azure CNI, Azure network policy,
/// KEDA and virtual node add-ons). An estimate: AKS changes these between versions.
pub const SYSTEM_PODS: &[SystemPod] = &[
    SystemPod {
        name: "kube-proxy",
        replicas: 0,
        cpu_m: 100,
        memory_mib: 0.0,
        when: When::Always,
        source: "typical AKS node",
    },
    SystemPod {
        name: "azure-ip-masq-agent",
        replicas: 0,
        cpu_m: 100,
        memory_mib: 50.0,
        when: When::Always,
        source: "typical AKS node",
    },
    SystemPod {
        name: "cloud-node-manager",
        replicas: 0,
        cpu_m: 50,
        memory_mib: 50.0,
        when: When::Always,
        source: "typical AKS node",
    },
    SystemPod {
        name: "csi-azuredisk-node",
        replicas: 0,
        cpu_m: 30,
        memory_mib: 60.0,
        when: When::Always,
        source: "typical AKS node",
    },
    SystemPod {
        name: "csi-azurefile-node",
        replicas: 0,
        cpu_m: 30,
        memory_mib: 60.0,
        when: When::Always,
        source: "typical AKS node",
    },
    SystemPod {
        name: "azure-cns",
        replicas: 0,
        cpu_m: 40,
        memory_mib: 250.0,
        when: When::AzureCni,
        source: "Azure/AKS#3525 (250 MB with azure-npm's 300)",
    },
    SystemPod {
        name: "azure-npm",
        replicas: 0,
        cpu_m: 250,
        memory_mib: 300.0,
        when: When::AzureNetworkPolicy,
        source: "Azure/AKS#2033, #2792",
    },
    SystemPod {
        name: "coredns",
        replicas: 2,
        cpu_m: 100,
        memory_mib: 70.0,
        when: When::Always,
        source: "CoreDNS's standard manifest",
    },
    SystemPod {
        name: "coredns-autoscaler",
        replicas: 1,
        cpu_m: 20,
        memory_mib: 10.0,
        when: When::Always,
        source: "typical AKS node",
    },
    SystemPod {
        name: "konnectivity-agent",
        replicas: 2,
        cpu_m: 20,
        memory_mib: 20.0,
        when: When::Always,
        source: "typical AKS node",
    },
    SystemPod {
        name: "metrics-server",
        replicas: 2,
        cpu_m: 50,
        memory_mib: 80.0,
        when: When::Always,
        source: "estimate",
    },
    SystemPod {
        name: "keda-operator",
        replicas: 1,
        cpu_m: 100,
        memory_mib: 100.0,
        when: When::Keda,
        source: "KEDA Helm chart defaults",
    },
    SystemPod {
        name: "keda-operator-metrics-apiserver",
        replicas: 1,
        cpu_m: 100,
        memory_mib: 100.0,
        when: When::Keda,
        source: "KEDA Helm chart defaults",
    },
    SystemPod {
        name: "keda-admission-webhooks",
        replicas: 1,
        cpu_m: 10,
        memory_mib: 10.0,
        when: When::Keda,
        source: "KEDA Helm chart defaults",
    },
    SystemPod {
        name: "aci-connector-linux",
        replicas: 1,
        cpu_m: 100,
        memory_mib: 100.0,
        when: When::VirtualNode,
        source: "estimate",
    },
];

/// The VM node pool, as the guide creates it.
#[derive(Clone, Debug, Serialize)]
pub struct Pool {
    pub vm_size: String,
    pub nodes: u32,
    pub autoscaler_max: Option<u32>,
    pub vcpus: u32,
    pub memory_gib: f64,
    pub max_pods: u32,
    /// `azure`, `azure` + overlay, `kubenet`, …
    pub network: String,
    pub network_policy: Option<String>,
    pub keda: bool,
    pub virtual_node: bool,
}

impl Pool {
    /// Reads the guide's `az aks create` command (and whether it enables the virtual node).
    /// `size` (vCPUs, GiB) stands in for the VM size table.
    pub fn from_guide(guide: &str, size: Option<(u32, f64)>) -> Result<Pool, String> {
        let flags = command_flags(guide, "az aks create")
            .ok_or("the guide has no `az aks create` command")?;
        let get = |flag: &str| flags.get(flag).and_then(|v| v.clone());
        let has = |flag: &str| flags.contains_key(flag);
        let vm_size =
            get("--node-vm-size").ok_or("`az aks create` in the guide sets no --node-vm-size")?;
        let (vcpus, memory_gib) = size
            .or_else(|| {
                VM_SIZES
                    .iter()
                    .find(|(name, _, _)| name.eq_ignore_ascii_case(&vm_size))
                    .map(|&(_, cpus, memory)| (cpus, memory))
            })
            .ok_or_else(|| {
                format!("unknown VM size {vm_size}: give --node-cpu and --node-memory")
            })?;
        let number = |flag: &str| -> Result<Option<u32>, String> {
            get(flag)
                .map(|v| {
                    v.parse::<u32>()
                        .map_err(|_| format!("{flag} {v} is not a number"))
                })
                .transpose()
        };
        let network = get("--network-plugin").unwrap_or_else(|| "kubenet".to_owned());
        let overlay = get("--network-plugin-mode").is_some_and(|m| m == "overlay");
        // AKS's defaults: Azure CNI in node-subnet mode 30 pods per node, overlay 250, kubenet 110.
        let default_max_pods = match (network.as_str(), overlay) {
            ("azure", false) => 30,
            ("azure" | "none", true) => 250,
            _ => 110,
        };
        Ok(Pool {
            nodes: number("--node-count")?.unwrap_or(3),
            autoscaler_max: if has("--enable-cluster-autoscaler") {
                number("--max-count")?
            } else {
                None
            },
            max_pods: number("--max-pods")?.unwrap_or(default_max_pods),
            network: if overlay {
                format!("{network} (overlay)")
            } else {
                network
            },
            network_policy: get("--network-policy"),
            keda: has("--enable-keda"),
            virtual_node: command_flags(guide, "az aks enable-addons")
                .and_then(|f| f.get("--addons").cloned().flatten())
                .is_some_and(|addons| addons.split(',').any(|a| a == "virtual-node")),
            vm_size,
            vcpus,
            memory_gib,
        })
    }

    pub fn kube_reserved_cpu_m(&self) -> u64 {
        KUBE_RESERVED_CPU_M
            .iter()
            .find(|&&(cores, _)| cores >= self.vcpus)
            .or(KUBE_RESERVED_CPU_M.last())
            .map_or(0, |&(_, m)| m)
    }

    pub fn kube_reserved_memory_mib(&self) -> f64 {
        let by_pods = 20.0 * f64::from(self.max_pods) + 50.0;
        by_pods.min(0.25 * self.memory_gib * 1024.0)
    }

    pub fn allocatable_cpu_m(&self) -> u64 {
        u64::from(self.vcpus) * 1000 - self.kube_reserved_cpu_m()
    }

    pub fn allocatable_memory_mib(&self) -> f64 {
        self.memory_gib * 1024.0 - self.kube_reserved_memory_mib() - EVICTION_MIB
    }

    /// The system pods this cluster runs.
    pub fn system_pods(&self) -> Vec<SystemPod> {
        SYSTEM_PODS
            .iter()
            .copied()
            .filter(|pod| match pod.when {
                When::Always => true,
                When::AzureCni => self.network.starts_with("azure"),
                When::AzureNetworkPolicy => self.network_policy.as_deref() == Some("azure"),
                When::Keda => self.keda,
                When::VirtualNode => self.virtual_node,
            })
            .collect()
    }
}

/// `--flag value` pairs (`None` for a flag without a value) of the first command in `text` that
/// starts with `command`, its `\`-continued lines included.
fn command_flags(text: &str, command: &str) -> Option<BTreeMap<String, Option<String>>> {
    let mut lines = text
        .lines()
        .skip_while(|line| !line.trim_start().starts_with(command));
    let mut words = Vec::new();
    for line in lines.by_ref() {
        let line = line.split(" #").next().unwrap_or_default();
        let continued = line.trim_end().ends_with('\\');
        words.extend(
            line.trim_end()
                .trim_end_matches('\\')
                .split_whitespace()
                .map(|w| w.trim_matches('"').to_owned()),
        );
        if !continued {
            break;
        }
    }
    if words.is_empty() {
        return None;
    }
    let mut flags = BTreeMap::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        if word.starts_with("--") {
            let value = words.get(i + 1).filter(|w| !w.starts_with("--")).cloned();
            if value.is_some() {
                i += 1;
            }
            flags.insert(word.clone(), value);
        }
        i += 1;
    }
    Some(flags)
}

/// What one VM node gives the storefront.
#[derive(Clone, Debug)]
pub struct NodeFit {
    pub free_cpu_m: u64,
    pub free_memory_mib: f64,
    pub free_pods: u32,
    /// What took the rest, for the report.
    pub taken_by: Vec<String>,
    pub storefront_pods: u32,
}

/// Spreads the system pods and `extra` (the load generator Job: name, CPU, memory) over the VM
/// nodes, each on the node with the most free CPU (as the scheduler's spreading score tends to),
/// then counts how many storefront pods of `cpu_m` / `memory_mib` fit on each.
pub fn fit(
    pool: &Pool,
    system: &[SystemPod],
    per_node_override: Option<(u64, f64)>,
    extra: &[(String, u64, f64)],
    cpu_m: u64,
    memory_mib: f64,
) -> Vec<NodeFit> {
    let mut nodes: Vec<NodeFit> = (0..pool.nodes)
        .map(|_| NodeFit {
            free_cpu_m: pool.allocatable_cpu_m(),
            free_memory_mib: pool.allocatable_memory_mib(),
            free_pods: pool.max_pods,
            taken_by: Vec::new(),
            storefront_pods: 0,
        })
        .collect();
    let take = |node: &mut NodeFit, name: String, cpu: u64, memory: f64| {
        node.free_cpu_m = node.free_cpu_m.saturating_sub(cpu);
        node.free_memory_mib = (node.free_memory_mib - memory).max(0.0);
        node.free_pods = node.free_pods.saturating_sub(1);
        node.taken_by.push(name);
    };
    let mut placed: Vec<(String, u64, f64)> = Vec::new();
    match per_node_override {
        Some((cpu, memory)) => {
            for node in &mut nodes {
                take(
                    node,
                    format!("system pods {cpu}m/{memory:.0}Mi (given)"),
                    cpu,
                    memory,
                );
            }
        }
        None => {
            for pod in system.iter().filter(|p| p.replicas == 0) {
                for node in &mut nodes {
                    take(node, pod.name.to_owned(), pod.cpu_m, pod.memory_mib);
                }
            }
            for pod in system.iter().filter(|p| p.replicas > 0) {
                for _ in 0..pod.replicas {
                    placed.push((pod.name.to_owned(), pod.cpu_m, pod.memory_mib));
                }
            }
        }
    }
    placed.extend(extra.iter().cloned());
    for (name, cpu, memory) in placed {
        if let Some(node) = nodes.iter_mut().max_by_key(|n| n.free_cpu_m) {
            take(node, name, cpu, memory);
        }
    }
    for node in &mut nodes {
        let by_cpu = node.free_cpu_m.checked_div(cpu_m).unwrap_or(u64::MAX);
        let by_memory = if memory_mib <= 0.0 {
            u64::MAX
        } else {
            (node.free_memory_mib / memory_mib) as u64
        };
        node.storefront_pods = by_cpu.min(by_memory).min(u64::from(node.free_pods)) as u32;
    }
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE: &str = "
```sh
az group create --name $RG --location $LOCATION
# Two VM nodes …
az aks create --resource-group $RG --name $AKS \\
  --node-count 2 --node-vm-size Standard_D4s_v5 \\
  --enable-cluster-autoscaler --min-count 2 --max-count 4 \\
  --network-plugin azure --network-policy azure --vnet-subnet-id \"$AKS_SUBNET_ID\" \\
  --attach-acr $ACR \\
  --enable-keda \\
  --generate-ssh-keys

az aks enable-addons --resource-group $RG --name $AKS \\
  --addons virtual-node --subnet-name virtual-node
```
";

    #[test]
    fn the_guide_names_the_pool() {
        let pool = Pool::from_guide(GUIDE, None).unwrap();
        assert_eq!(
            (pool.vm_size.as_str(), pool.nodes, pool.vcpus),
            ("Standard_D4s_v5", 2, 4)
        );
        assert_eq!(pool.autoscaler_max, Some(4));
        assert_eq!((pool.max_pods, pool.network.as_str()), (30, "azure"));
        assert_eq!(pool.network_policy.as_deref(), Some("azure"));
        assert!(pool.keda && pool.virtual_node);
        assert!(Pool::from_guide("no cluster here", None).is_err());
    }

    #[test]
    fn allocatable_follows_the_documented_reservations() {
        let pool = Pool::from_guide(GUIDE, None).unwrap();
        assert_eq!(pool.kube_reserved_cpu_m(), 140);
        assert_eq!(pool.allocatable_cpu_m(), 3860);
        // 20 MB × 30 pods + 50 MB = 650, below 25% of 16 GiB; then the 100 Mi eviction threshold.
        assert_eq!(pool.kube_reserved_memory_mib(), 650.0);
        assert_eq!(pool.allocatable_memory_mib(), 16384.0 - 650.0 - 100.0);
        let small = Pool {
            memory_gib: 4.0,
            max_pods: 70,
            vcpus: 2,
            ..pool
        };
        assert_eq!(
            small.kube_reserved_memory_mib(),
            1024.0,
            "25% of 4 GiB is less than 1450"
        );
        assert_eq!(small.kube_reserved_cpu_m(), 100);
    }

    #[test]
    fn storefront_pods_fill_what_system_pods_and_the_job_leave() {
        let pool = Pool::from_guide(GUIDE, None).unwrap();
        let fits = fit(
            &pool,
            &[],
            Some((860, 1000.0)),
            &[("loadgen".to_owned(), 1000, 512.0)],
            500,
            512.0,
        );
        // 3860 − 860 = 3000 → 6 pods; the node with the Job: 2000 → 4.
        let mut counts: Vec<u32> = fits.iter().map(|n| n.storefront_pods).collect();
        counts.sort_unstable();
        assert_eq!(counts, [4, 6]);
        let crowded = Pool {
            max_pods: 3,
            ..pool
        };
        let fits = fit(&crowded, &[], Some((0, 0.0)), &[], 500, 512.0);
        assert!(
            fits.iter().all(|n| n.storefront_pods == 2),
            "max pods bounds it too"
        );
    }
}
