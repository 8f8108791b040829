//! What a restart or a replay keeps of the ended execution it starts from.
//!
//! Kestra restarts an execution by rewriting its task-run list: the failed
//! task runs (and their flowable ancestors) go back to RESTARTED (RUNNING
//! for the ancestors), the `errors` branches that ran are dropped, the rest
//! is kept, and its executor recomputes what comes next. A replay does the
//! same into a new execution, from one task run: that run and its ancestors
//! start again, what followed it is dropped.
//!
//! Peregrine's runs are built forward, frame by frame, so a restarted run
//! is built the same way, guided by the old task runs: each task run it
//! creates looks for the old one in its place (same parent, task, loop value
//! and iteration). A kept one is copied as it ended (with its descendants,
//! for a flowable) instead of running; one to restart runs again with its
//! history and attempts carried on; one with no counterpart runs anew. The
//! guide is built from the old execution's final record alone, which the
//! journal keeps with the restart, so a replay of the journal builds the
//! same run.

use rustc_hash::FxHashMap;
use std::sync::Arc;

use super::plan::{FlowRevision, TaskIdx};
use crate::execution::{Execution, State, TaskRun};

/// What becomes of an old task run found in its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Copied as it ended.
    Keep,
    /// Runs again: a new attempt (RESTARTED) for a runnable task, the
    /// frame again (RUNNING) for a flowable one.
    Restart,
}

/// Where a task run sits: its parent (an old index), task, loop value and
/// iteration.
type Place = (Option<u32>, Arc<str>, Option<Arc<str>>, Option<u32>);

/// Kestra's message when nothing of an execution can be restarted.
pub(crate) const NOTHING_TO_RESTART: &str = "No task found to restart execution from!";

#[derive(Debug)]
pub(crate) struct Guide {
    old: Execution,
    /// Per old task run: its fate, or `None` when it is dropped.
    fates: Vec<Option<Fate>>,
    /// Old task runs not matched yet, by place.
    by_place: FxHashMap<Place, u32>,
    /// Matched task runs keep their ids (a restart of the same execution);
    /// a new execution gets its own.
    keep_ids: bool,
    /// A replay's task run (an old index): its descendants and what
    /// followed it run anew.
    from: Option<u32>,
    /// Per task run of the new run, in order: the old one it continues.
    matched: Vec<Option<u32>>,
    /// A replay's task run and its ancestors in the new run, once created:
    /// their frames, groups and phase epochs (see `Run::follows_replayed`).
    pub lineage: Vec<(u32, u32, u32)>,
}

impl Guide {
    /// Restarts the failed task runs of `old` (an ended execution) and
    /// their ancestors; keeps the rest but the `errors` branches.
    pub fn restart(old: Execution, rev: &FlowRevision, keep_ids: bool) -> Result<Guide, String> {
        let dropped = dropped(&old, rev);
        let targets: Vec<u32> = (0..old.task_runs.len() as u32)
            .filter(|&i| !dropped[i as usize])
            .filter(|&i| {
                matches!(
                    old.task_runs[i as usize].state.current(),
                    State::Failed | State::Paused
                )
            })
            .collect();
        if targets.is_empty() {
            return Err(NOTHING_TO_RESTART.to_owned());
        }
        Ok(Self::build(old, rev, dropped, &targets, keep_ids, None))
    }

    /// Replays `old` (an ended execution) into a new one from its task run
    /// `from`: it and its ancestors run again, its descendants and what
    /// followed it run anew, the rest is kept.
    pub fn replay(old: Execution, rev: &FlowRevision, from: u32) -> Result<Guide, String> {
        if from as usize >= old.task_runs.len() {
            return Err(format!("task run {from} is not in the execution"));
        }
        let mut dropped = dropped(&old, rev);
        // Within a task whose tasks run again all together, the replay is
        // that task's.
        let from = ancestors(&old, from)
            .filter(|&a| a != from && restarts_whole(&old, rev, a))
            .last()
            .unwrap_or(from);
        if dropped[from as usize] {
            return Err(format!(
                "task run of '{}' cannot be replayed: it ran in an `errors` branch or its task is \
                 gone from the flow",
                old.task_runs[from as usize].task_id
            ));
        }
        for (i, gone) in dropped.iter_mut().enumerate() {
            if ancestors(&old, i as u32).skip(1).any(|a| a == from) {
                *gone = true;
            }
        }
        Ok(Self::build(old, rev, dropped, &[from], false, Some(from)))
    }

    fn build(
        old: Execution,
        rev: &FlowRevision,
        dropped: Vec<bool>,
        targets: &[u32],
        keep_ids: bool,
        from: Option<u32>,
    ) -> Guide {
        let mut fates: Vec<Option<Fate>> = dropped
            .iter()
            .map(|&d| (!d).then_some(Fate::Keep))
            .collect();
        for &t in targets {
            for a in ancestors(&old, t) {
                fates[a as usize] = Some(Fate::Restart);
            }
        }
        // A task whose tasks belong together (a WorkingDirectory's share a
        // folder the restart no longer has, a ForEachItem's read one
        // another's work) runs them all again, as Kestra does.
        for i in 0..old.task_runs.len() as u32 {
            if fates[i as usize] == Some(Fate::Restart) && restarts_whole(&old, rev, i) {
                for j in i + 1..old.task_runs.len() as u32 {
                    if ancestors(&old, j).skip(1).any(|a| a == i) {
                        fates[j as usize] = None;
                    }
                }
            }
        }
        let mut by_place = FxHashMap::default();
        for (i, run) in old.task_runs.iter().enumerate() {
            if fates[i].is_some() {
                // A later run in the same place (a flowable's retry) is the
                // one that counts.
                by_place.insert(place(run.parent, run), i as u32);
            }
        }
        Guide {
            old,
            fates,
            by_place,
            keep_ids,
            from,
            matched: Vec::new(),
            lineage: Vec::new(),
        }
    }

    pub fn old(&self) -> &Execution {
        &self.old
    }

    pub fn keeps_ids(&self) -> bool {
        self.keep_ids
    }

    /// The old task run a replay starts from.
    pub fn from(&self) -> Option<u32> {
        self.from
    }

    /// The old task run that task run `tr` of the new run continues.
    pub fn matched(&self, tr: u32) -> Option<u32> {
        self.matched.get(tr as usize).copied().flatten()
    }

    pub fn fate(&self, old: u32) -> Option<Fate> {
        self.fates.get(old as usize).copied().flatten()
    }

    /// The next task run of the new run, `run` (its parent `parent`, a new
    /// index), was created: finds the old one in its place, unless `anew`.
    pub fn find(&mut self, parent: Option<u32>, run: &TaskRun, anew: bool) -> Option<u32> {
        let old_parent = match parent.map(|p| self.matched(p)) {
            None => Some(None),
            // A replayed task run's descendants run anew.
            Some(Some(o)) if Some(o) != self.from => Some(Some(o)),
            Some(_) => None,
        };
        let found = match old_parent {
            Some(old_parent) if !anew => self.by_place.remove(&place(old_parent, run)),
            _ => None,
        };
        self.matched.push(found);
        found
    }

    /// The next task run of the new run is a copy of old task run `old`
    /// (a kept flowable's descendant).
    pub fn copied(&mut self, old: u32) {
        self.matched.push(Some(old));
    }

    /// The old descendants of old task run `of`, in order (parents first).
    pub fn descendants(&self, of: u32) -> Vec<u32> {
        let mut inside = vec![false; self.old.task_runs.len()];
        inside[of as usize] = true;
        let mut found = Vec::new();
        for (i, run) in self.old.task_runs.iter().enumerate().skip(of as usize + 1) {
            if run.parent.is_some_and(|p| inside[p as usize]) {
                inside[i] = true;
                found.push(i as u32);
            }
        }
        found
    }
}

fn place(parent: Option<u32>, run: &TaskRun) -> Place {
    (
        parent,
        Arc::clone(&run.task_id),
        run.value.clone(),
        run.iteration,
    )
}

/// Task run `i` and its ancestors, innermost first.
/// Whether old task run `i`'s task runs its tasks again all together when
/// it runs again ([`crate::tasks::TaskKind::restarts_whole`]).
fn restarts_whole(old: &Execution, rev: &FlowRevision, i: u32) -> bool {
    rev.by_id
        .get(&old.task_runs[i as usize].task_id)
        .is_some_and(|&task| rev.node(task).task.kind.restarts_whole())
}

fn ancestors(old: &Execution, i: u32) -> impl Iterator<Item = u32> + '_ {
    std::iter::successors(Some(i), |&a| old.task_runs[a as usize].parent)
}

/// Per old task run: whether it is dropped (it ran in an `errors` branch,
/// or its task is no longer in the flow), with its descendants.
fn dropped(old: &Execution, rev: &FlowRevision) -> Vec<bool> {
    let mut dropped = vec![false; old.task_runs.len()];
    for (i, run) in old.task_runs.iter().enumerate() {
        let parent_dropped = run.parent.is_some_and(|p| dropped[p as usize]);
        dropped[i] = parent_dropped
            || match rev.by_id.get(&run.task_id) {
                None => true,
                Some(&task) => in_errors(rev, task),
            };
    }
    dropped
}

/// Whether task `task` sits in an `errors` list (the flow's or a flowable
/// task's), at any depth.
fn in_errors(rev: &FlowRevision, task: TaskIdx) -> bool {
    let mut at = task;
    loop {
        let parent = rev.node(at).parent;
        let errors = parent.map_or(rev.root_errors, |p| rev.node(p).errors);
        if rev.list(errors).contains(&at) {
            return true;
        }
        match parent {
            Some(p) => at = p,
            None => return false,
        }
    }
}
