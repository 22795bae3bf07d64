//! The container's CPU limit, read from its cgroup: what Live Metrics' CPU figure is reported
//! against (see `telemetry`), so a pod pegged at its limit reads 100%, not the share of one core
//! the limit happens to be.
//!
//! A Kubernetes CPU limit is a CFS quota: cgroup v2 writes it to `cpu.max` (`"50000 100000"`: 50 ms
//! of CPU time every 100 ms, half a core; `"max 100000"`: no limit), cgroup v1 to
//! `cpu.cfs_quota_us` and `cpu.cfs_period_us` (a quota of -1: no limit). The limit in force is the
//! smallest along the path from the hierarchy's root to the process's cgroup (a pod's limit can
//! sit on the pod's cgroup above the container's), so every level that has the files is read.
//! Everything takes the filesystem's root as a path, so tests can stage the files anywhere.

use std::path::{Path, PathBuf};

/// Cores a cgroup v2 `cpu.max` allows, or `None` for no limit (or contents it cannot read).
pub fn parse_cpu_max(contents: &str) -> Option<f64> {
    let mut fields = contents.split_whitespace();
    let quota = fields.next()?;
    let period: f64 = fields.next().map_or(Some(100_000.0), |p| p.parse().ok())?;
    if quota == "max" {
        return None;
    }
    cores(quota.parse().ok()?, period)
}

/// Cores a cgroup v1 CFS quota and period allow, or `None` for no limit (a quota of -1).
pub fn parse_cfs(quota: &str, period: &str) -> Option<f64> {
    cores(quota.trim().parse().ok()?, period.trim().parse().ok()?)
}

fn cores(quota: f64, period: f64) -> Option<f64> {
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// The CPU limit, in cores, of the process's cgroup under the filesystem root `root` (`/` in a
/// pod), or `None` when there is none: no cgroup CPU controller, or no quota anywhere on the path.
pub fn cpu_limit_cores(root: &Path) -> Option<f64> {
    let membership = std::fs::read_to_string(root.join("proc/self/cgroup")).ok()?;
    let cgroups = root.join("sys/fs/cgroup");
    let mut limit: Option<f64> = None;
    let mut tighten = |cores: Option<f64>| {
        if let Some(cores) = cores {
            limit = Some(limit.map_or(cores, |l| l.min(cores)));
        }
    };
    for line in membership.lines() {
        // `hierarchy-id:controllers:path`; cgroup v2 is `0::path`.
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            for dir in levels(&cgroups, path) {
                tighten(
                    std::fs::read_to_string(dir.join("cpu.max"))
                        .ok()
                        .and_then(|max| parse_cpu_max(&max)),
                );
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            for dir in levels(&cgroups.join(controllers), path) {
                let read = |file| std::fs::read_to_string(dir.join(file)).ok();
                if let (Some(quota), Some(period)) =
                    (read("cpu.cfs_quota_us"), read("cpu.cfs_period_us"))
                {
                    tighten(parse_cfs(&quota, &period));
                }
            }
        }
    }
    limit
}

/// The hierarchy's root `mount` and each cgroup below it on the way to `path`. (In a container
/// with its own cgroup namespace the path is `/` and the mount is the container's cgroup; where
/// the path names the host's hierarchy instead, the levels that do not exist are skipped.)
fn levels(mount: &Path, path: &str) -> Vec<PathBuf> {
    let mut dir = mount.to_owned();
    let mut out = vec![dir.clone()];
    for part in path.split('/').filter(|p| !p.is_empty() && *p != "..") {
        dir.push(part);
        out.push(dir.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(files: &[(&str, &str)]) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        for (path, contents) in files {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, contents).unwrap();
        }
        root
    }

    #[test]
    fn reads_the_quota_of_either_version() {
        assert_eq!(parse_cpu_max("50000 100000\n"), Some(0.5));
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000"), Some(1.5));
        assert_eq!(parse_cpu_max(""), None);
        assert_eq!(parse_cfs("25000\n", "100000\n"), Some(0.25));
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
    }

    #[test]
    fn a_v2_container_with_its_own_namespace() {
        let root = stage(&[
            ("proc/self/cgroup", "0::/\n"),
            ("sys/fs/cgroup/cpu.max", "50000 100000\n"),
        ]);
        assert_eq!(cpu_limit_cores(root.path()), Some(0.5));
        let unlimited = stage(&[
            ("proc/self/cgroup", "0::/\n"),
            ("sys/fs/cgroup/cpu.max", "max 100000\n"),
        ]);
        assert_eq!(cpu_limit_cores(unlimited.path()), None);
    }

    #[test]
    fn the_tightest_limit_on_the_path_is_the_one_in_force() {
        let root = stage(&[
            ("proc/self/cgroup", "0::/kubepods/pod1/ctr\n"),
            ("sys/fs/cgroup/kubepods/pod1/cpu.max", "50000 100000\n"),
            ("sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000\n"),
        ]);
        assert_eq!(cpu_limit_cores(root.path()), Some(0.5));
    }

    #[test]
    fn a_v1_container() {
        let root = stage(&[
            (
                "proc/self/cgroup",
                "5:memory:/kubepods/x\n3:cpu,cpuacct:/kubepods/x\n1:name=systemd:/\n",
            ),
            ("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "150000\n"),
            ("sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n"),
        ]);
        assert_eq!(cpu_limit_cores(root.path()), Some(1.5));
        let unlimited = stage(&[
            ("proc/self/cgroup", "1:cpu:/\n0::/\n"),
            ("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n"),
            ("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n"),
        ]);
        assert_eq!(cpu_limit_cores(unlimited.path()), None);
    }

    #[test]
    fn no_cgroup_files_means_no_limit() {
        let root = stage(&[]);
        assert_eq!(cpu_limit_cores(root.path()), None);
    }
}
