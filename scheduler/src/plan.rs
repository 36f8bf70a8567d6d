//! Routing and batching: which files go where, in which groups.

use loader::config::{Router, SourceConfig, TickConfig};
use loader::contract::{Batch, FileTask};
use loader::store::ObjectMeta;

/// What a tick will do with the files it selected.
#[derive(Debug, Default)]
pub struct Plan {
    pub batches: Vec<Batch>,
    /// Files no route takes, with the reason: no pattern matches, or the
    /// key's captured segment may not name a table. They fail permanently.
    pub unrouted: Vec<(ObjectMeta, String)>,
}

/// Groups `files` (oldest first) by destination and table, in order of
/// first appearance, then cuts each group into batches of at most
/// `batch_max_files` files and `batch_max_bytes` bytes (a single larger
/// file gets a batch of its own). A file for which `alone` holds (it was in
/// a batch whose worker died) gets a batch of its own too, so a poison file
/// can only take itself down. A destination for which `whole` holds
/// (Redshift, where COPYs into one table run one after another, so one
/// large COPY beats several small ones) gets one batch per table, uncut.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    files: Vec<ObjectMeta>,
    router: &Router,
    source: &SourceConfig,
    tick: &TickConfig,
    tick_id: &str,
    alone: &dyn Fn(&ObjectMeta) -> bool,
    whole: &dyn Fn(&str) -> bool,
) -> Plan {
    let mut groups: Vec<((String, String, usize), Vec<FileTask>)> = Vec::new();
    let mut unrouted = Vec::new();
    for (n, meta) in files.into_iter().enumerate() {
        let Some((route, table)) = router.resolve(&meta.key) else {
            let reason = format!(
                "no route: no [[route]] pattern matches {:?}",
                source.relative(&meta.key)
            );
            unrouted.push((meta, reason));
            continue;
        };
        let table = match table {
            Ok(table) => table,
            Err(why) => {
                unrouted.push((meta, why));
                continue;
            }
        };
        // A group of its own: the third member is unique for a suspect.
        let solo = if alone(&meta) { n + 1 } else { 0 };
        let task = FileTask {
            processed_key: source.processed_key(&meta.key),
            rejected_key: source.rejected_key(&meta.key),
            key: meta.key,
            etag: meta.etag,
            size: meta.size,
            spec: router.spec(route),
        };
        let group = (route.destination.clone(), table, solo);
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, tasks)) => tasks.push(task),
            None => groups.push((group, vec![task])),
        }
    }
    let mut batches = Vec::new();
    for ((destination, table, _), tasks) in groups {
        let uncut = whole(&destination);
        let mut current: Vec<FileTask> = Vec::new();
        let mut bytes = 0;
        for task in tasks {
            let full = !uncut
                && (current.len() >= tick.batch_max_files
                    || (!current.is_empty() && bytes + task.size > tick.batch_max_bytes));
            if full {
                batches.push(batch(
                    tick_id,
                    batches.len(),
                    &destination,
                    &table,
                    std::mem::take(&mut current),
                ));
                bytes = 0;
            }
            bytes += task.size;
            current.push(task);
        }
        if !current.is_empty() {
            batches.push(batch(tick_id, batches.len(), &destination, &table, current));
        }
    }
    Plan { batches, unrouted }
}

fn batch(tick_id: &str, n: usize, destination: &str, table: &str, files: Vec<FileTask>) -> Batch {
    Batch {
        id: format!("{tick_id}-{n:04}"),
        destination: destination.to_owned(),
        table: table.to_owned(),
        files,
        check_only: false,
        deadline: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use loader::config::RouteConfig;

    fn meta(key: &str, size: u64) -> ObjectMeta {
        ObjectMeta {
            key: key.into(),
            size,
            last_modified: chrono::Utc::now(),
            etag: "\"e\"".into(),
        }
    }

    #[test]
    fn groups_by_table_and_cuts_by_count_and_bytes() {
        // The embedded config, its routes replaced by one per table.
        let mut config = crate::demo::config_in(std::path::Path::new("/tmp/x"));
        let template = config.routes[0].clone();
        config.routes = ["a", "b"]
            .map(|t| RouteConfig {
                pattern: format!("{t}/*"),
                table: t.into(),
                ..template.clone()
            })
            .into();
        let router = Router::new(&config).unwrap();
        let tick = TickConfig {
            batch_max_files: 2,
            batch_max_bytes: 100,
            ..TickConfig::default()
        };
        let files = vec![
            meta("incoming/a/1", 10),
            meta("incoming/b/1", 10),
            meta("incoming/a/2", 10),
            meta("incoming/a/3", 10),
            meta("incoming/zzz", 1),
            meta("incoming/b/big", 500),
            meta("incoming/b/2", 10),
            meta("incoming/a/suspect", 1),
            meta("incoming/a/4", 1),
        ];
        let alone = |m: &ObjectMeta| m.key.ends_with("suspect");
        let shape = |whole: &dyn Fn(&str) -> bool| -> Vec<(String, Vec<String>)> {
            plan(
                files.clone(),
                &router,
                &config.source,
                &tick,
                "t",
                &alone,
                whole,
            )
            .batches
            .iter()
            .map(|b| {
                (
                    b.table.clone(),
                    b.files.iter().map(|f| f.key.clone()).collect(),
                )
            })
            .collect()
        };
        // Uncut (Redshift): one batch per table, whatever the limits; a
        // suspect still goes alone.
        assert_eq!(
            shape(&|_| true),
            vec![
                (
                    "a".into(),
                    ["1", "2", "3", "4"]
                        .map(|n| format!("incoming/a/{n}"))
                        .into()
                ),
                (
                    "b".into(),
                    ["1", "big", "2"].map(|n| format!("incoming/b/{n}")).into()
                ),
                ("a".into(), vec!["incoming/a/suspect".into()]),
            ]
        );
        assert_eq!(
            shape(&|_| false),
            vec![
                (
                    "a".into(),
                    vec!["incoming/a/1".into(), "incoming/a/2".into()]
                ),
                (
                    "a".into(),
                    vec!["incoming/a/3".into(), "incoming/a/4".into()]
                ),
                ("b".into(), vec!["incoming/b/1".into()]),
                ("b".into(), vec!["incoming/b/big".into()]),
                ("b".into(), vec!["incoming/b/2".into()]),
                ("a".into(), vec!["incoming/a/suspect".into()]),
            ]
        );
        let plan = plan(files, &router, &config.source, &tick, "t", &alone, &|_| {
            false
        });
        assert_eq!(plan.batches[0].files[0].processed_key, "processed/a/1");
        assert_eq!(plan.unrouted.len(), 1);
        let ids: std::collections::HashSet<_> = plan.batches.iter().map(|b| &b.id).collect();
        assert_eq!(ids.len(), plan.batches.len());
    }
}
