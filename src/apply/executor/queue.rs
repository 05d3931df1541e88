//! Which operations may start: dependency bookkeeping that costs O(1) per edge, so a rollout of
//! n operations is linear in n, not a pass over every operation after each completion.
//!
//! An operation is ready once every operation in its `after` list has succeeded and, with
//! `after_phase: g`, once gate g is open. Gates are cumulative: gate g is open when every
//! operation completing it has succeeded and gate g − 1 is open, so an operation gated on a phase
//! also comes after every phase before it. When an operation fails (or is skipped), its
//! dependents are skipped, and so is everything gated on its gate or a later one.

use crate::plan::ops::Operation;
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    /// Waits for dependencies.
    Pending,
    /// In a ready set.
    Ready,
    /// Handed out by `pop`.
    Started,
    /// Succeeded, failed or skipped.
    Settled,
}

pub(super) struct Queue {
    mark: Vec<Mark>,
    /// Dependencies not met yet: `after` entries not succeeded, plus one while the gate is shut.
    missing: Vec<usize>,
    dependents: Vec<Vec<usize>>,
    /// Operations waiting on each gate.
    gated: Vec<Vec<usize>>,
    /// Operations that complete each gate and have not succeeded yet.
    gate_left: Vec<usize>,
    gate_of: Vec<Option<usize>>,
    completes: Vec<Option<usize>>,
    /// Gates below this index are open.
    open: usize,
    /// Gates from this index on can never open (an operation completing one failed).
    dead: usize,
    /// Ready operations that send requests (bounded by `--concurrency`), and those that do not
    /// (waits, which share the watch hub; keeps and deferrals), each in id order.
    ready_requests: BTreeSet<usize>,
    ready_free: BTreeSet<usize>,
    sends_requests: Vec<bool>,
}

impl Queue {
    /// `sends_requests(op)`: whether the operation writes (and so counts against the
    /// concurrency bound).
    pub(super) fn new(ops: &[Operation], sends_requests: impl Fn(&Operation) -> bool) -> Queue {
        let gates = ops
            .iter()
            .filter_map(|o| o.completes_phase.max(o.after_phase))
            .max()
            .map_or(0, |g| g + 1);
        let n = ops.len();
        let mut q = Queue {
            mark: vec![Mark::Pending; n],
            missing: vec![0; n],
            dependents: vec![Vec::new(); n],
            gated: vec![Vec::new(); gates],
            gate_left: vec![0; gates],
            gate_of: Vec::with_capacity(n),
            completes: Vec::with_capacity(n),
            open: 0,
            dead: gates,
            ready_requests: BTreeSet::new(),
            ready_free: BTreeSet::new(),
            sends_requests: ops.iter().map(&sends_requests).collect(),
        };
        for op in ops {
            // A gate no operation completes is open from the start (as is one out of range).
            let gate = op.after_phase.filter(|g| *g < gates);
            let completes = op.completes_phase.filter(|g| *g < gates);
            q.gate_of.push(gate);
            q.completes.push(completes);
            if let Some(g) = completes {
                q.gate_left[g] += 1;
            }
            if let Some(g) = gate {
                q.gated[g].push(op.id);
                q.missing[op.id] += 1;
            }
            for d in &op.after {
                if *d < n {
                    q.dependents[*d].push(op.id);
                    q.missing[op.id] += 1;
                }
            }
        }
        for id in 0..n {
            if q.missing[id] == 0 {
                q.make_ready(id);
            }
        }
        q.open_gates();
        q
    }

    fn make_ready(&mut self, id: usize) {
        self.mark[id] = Mark::Ready;
        if self.sends_requests[id] {
            self.ready_requests.insert(id);
        } else {
            self.ready_free.insert(id);
        }
    }

    fn met(&mut self, id: usize) {
        if self.mark[id] != Mark::Pending {
            return;
        }
        self.missing[id] = self.missing[id].saturating_sub(1);
        if self.missing[id] == 0 {
            self.make_ready(id);
        }
    }

    /// Opens every gate whose operations have all succeeded, in order.
    fn open_gates(&mut self) {
        while self.open < self.dead && self.open < self.gate_left.len() {
            let g = self.open;
            if self.gate_left[g] > 0 {
                return;
            }
            self.open += 1;
            for id in std::mem::take(&mut self.gated[g]) {
                self.met(id);
            }
        }
    }

    /// The next operation to start, lowest id first: one that sends no request, else (when
    /// `may_request`) one that does.
    pub(super) fn pop(&mut self, may_request: bool) -> Option<usize> {
        let id = match self.ready_free.pop_first() {
            Some(id) => id,
            None if may_request => self.ready_requests.pop_first()?,
            None => return None,
        };
        self.mark[id] = Mark::Started;
        Some(id)
    }

    /// The operation succeeded: its dependents and its gate move on.
    pub(super) fn succeeded(&mut self, id: usize) {
        self.mark[id] = Mark::Settled;
        for d in std::mem::take(&mut self.dependents[id]) {
            self.met(d);
        }
        if let Some(g) = self.completes[id] {
            self.gate_left[g] = self.gate_left[g].saturating_sub(1);
            self.open_gates();
        }
    }

    /// The operation failed (or was abandoned): returns the operations skipped because of it,
    /// in no particular order.
    pub(super) fn failed(&mut self, id: usize) -> Vec<usize> {
        self.mark[id] = Mark::Settled;
        let mut skipped = Vec::new();
        let mut todo = vec![id];
        // Bounded: each operation is settled once, and only unsettled ones are pushed.
        while let Some(f) = todo.pop() {
            for d in std::mem::take(&mut self.dependents[f]) {
                if self.skip(d) {
                    skipped.push(d);
                    todo.push(d);
                }
            }
            if let Some(g) = self.completes[f].filter(|g| *g < self.dead) {
                let from = g.max(self.open);
                for gate in from..self.dead {
                    for d in std::mem::take(&mut self.gated[gate]) {
                        if self.skip(d) {
                            skipped.push(d);
                            todo.push(d);
                        }
                    }
                }
                self.dead = from;
            }
        }
        skipped
    }

    /// Settles a pending (or ready) operation as skipped; false when it started or settled.
    fn skip(&mut self, id: usize) -> bool {
        match self.mark[id] {
            Mark::Pending => {}
            Mark::Ready => {
                self.ready_requests.remove(&id);
                self.ready_free.remove(&id);
            }
            Mark::Started | Mark::Settled => return false,
        }
        self.mark[id] = Mark::Settled;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{Kind, ObjectRef};
    use crate::plan::ops::Op;

    fn op(
        id: usize,
        after: Vec<usize>,
        gate: Option<usize>,
        completes: Option<usize>,
    ) -> Operation {
        Operation {
            id,
            object: ObjectRef::new(Kind::PersistentVolume, "", &format!("o{id}")),
            step: 0,
            op: Op::Keep,
            after,
            after_phase: gate,
            completes_phase: completes,
        }
    }

    fn drain(q: &mut Queue) -> Vec<usize> {
        std::iter::from_fn(|| q.pop(true)).collect()
    }

    #[test]
    fn dependents_start_when_their_dependencies_succeed() {
        let ops = vec![
            op(0, vec![], None, Some(0)),
            op(1, vec![], None, Some(0)),
            op(2, vec![0], None, Some(1)),
            op(3, vec![], Some(0), Some(1)),
            op(4, vec![], Some(1), None),
        ];
        let mut q = Queue::new(&ops, |_| true);
        assert_eq!(drain(&mut q), vec![0, 1]);
        q.succeeded(0);
        // Op 2 needs only op 0; op 3 needs the whole gate 0.
        assert_eq!(drain(&mut q), vec![2]);
        q.succeeded(1);
        assert_eq!(drain(&mut q), vec![3]);
        q.succeeded(3);
        assert_eq!(drain(&mut q), Vec::<usize>::new());
        q.succeeded(2);
        assert_eq!(drain(&mut q), vec![4]);
    }

    #[test]
    fn gates_are_cumulative() {
        // Gate 1 is completed by op 1 alone (it depends on op 0 only), but op 2 also waits for
        // gate 0, which op 3 has not completed.
        let ops = vec![
            op(0, vec![], None, Some(0)),
            op(1, vec![0], None, Some(1)),
            op(2, vec![], Some(1), None),
            op(3, vec![], None, Some(0)),
        ];
        let mut q = Queue::new(&ops, |_| true);
        assert_eq!(drain(&mut q), vec![0, 3]);
        q.succeeded(0);
        assert_eq!(drain(&mut q), vec![1]);
        q.succeeded(1);
        assert_eq!(drain(&mut q), Vec::<usize>::new());
        q.succeeded(3);
        assert_eq!(drain(&mut q), vec![2]);
    }

    #[test]
    fn a_failure_skips_its_dependents_and_later_gates_only() {
        let ops = vec![
            op(0, vec![], None, Some(0)),
            op(1, vec![0], None, None),
            op(2, vec![1], None, None),
            op(3, vec![], None, Some(0)),
            op(4, vec![3], None, None),
            op(5, vec![], Some(0), Some(1)),
            op(6, vec![], Some(1), None),
        ];
        let mut q = Queue::new(&ops, |_| true);
        assert_eq!(drain(&mut q), vec![0, 3]);
        let mut skipped = q.failed(0);
        skipped.sort();
        assert_eq!(skipped, vec![1, 2, 5, 6]);
        q.succeeded(3);
        assert_eq!(drain(&mut q), vec![4]);
    }

    #[test]
    fn requests_wait_for_a_slot_and_the_rest_does_not() {
        let ops = vec![
            op(0, vec![], None, None),
            op(1, vec![], None, None),
            op(2, vec![], None, None),
        ];
        let mut q = Queue::new(&ops, |o| o.id != 1);
        assert_eq!(q.pop(false), Some(1));
        assert_eq!(q.pop(false), None);
        assert_eq!(q.pop(true), Some(0));
    }
}
