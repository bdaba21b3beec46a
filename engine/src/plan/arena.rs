//! Memory planning: every intermediate value gets a slot in an arena, offsets
//! chosen by liveness, greedy by size (largest first, lowest offset that
//! overlaps no live value) — the scheme of TFLite's and ExecuTorch's planners.
//!
//! For the GPU the arena is a set of banks — one device buffer each, as
//! ExecuTorch's planned memory is a set of `mem_id`s — so that kernels write
//! their outputs in place: a dispatch may not write a buffer it also reads, so
//! each step's outputs go to a bank none of its inputs is in (the lowest such,
//! in step order), and each bank is planned on its own. The CPU needs one bank.

use std::collections::HashMap;

use super::Step;
use crate::program::Program;

/// Offsets are multiples of this many f32 (256 bytes: the GPU's storage
/// binding offset alignment).
pub const ALIGN: usize = 64;

/// Where a value lives: `len` f32 from `offset` (both in elements) of bank `bank`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub bank: usize,
    pub offset: usize,
    pub len: usize,
}

/// The planned arena.
#[derive(Debug, Clone, Default)]
pub struct Arena {
    /// Every program input and node output (views share their source's slot).
    pub slots: HashMap<String, Slot>,
    /// Each bank's length in f32 (multiples of [`ALIGN`]).
    pub banks: Vec<usize>,
    /// All banks' length in f32.
    pub len: usize,
    /// The largest sum of live values at any step, in f32 (a lower bound on `len`).
    pub peak_live: usize,
    /// Each stored value's lifetime, in steps: (defined, last read).
    pub lifetimes: HashMap<String, (usize, usize)>,
}

impl Arena {
    pub fn bytes(&self) -> u64 {
        self.len as u64 * 4
    }

    /// Plans `steps`; with `banked`, over banks such that no step writes a bank
    /// it reads, and whose live values stay within `cap` f32 each (a value
    /// larger than `cap` gets a bank of its own).
    pub(super) fn plan(program: &Program, steps: &[Step], banked: bool, cap: Option<usize>) -> Arena {
        let nodes = &program.nodes;
        // Views alias their input: a reshaped value is the same memory.
        let mut root: HashMap<&str, &str> = HashMap::new();
        // Lifetimes, in step indices: [first defined, last read].
        let mut life: HashMap<String, (usize, usize)> = HashMap::new();
        for i in &program.inputs {
            life.insert(i.name.clone(), (0, 0));
        }
        let last = steps.len();
        for (t, s) in steps.iter().enumerate() {
            let n = &nodes[s.node];
            // A fused activation's output is this step's output.
            let outputs: Vec<&str> = match s.fused {
                Some((a, _)) => nodes[a].outputs.iter().map(String::as_str).collect(),
                None => n.outputs.iter().map(String::as_str).collect(),
            };
            for input in &n.inputs {
                let r = find(&root, input).to_string();
                if let Some(l) = life.get_mut(&r) {
                    l.1 = l.1.max(t);
                }
            }
            if s.alias {
                root.insert(outputs[0], n.inputs[0].as_str());
                continue;
            }
            for o in outputs {
                life.insert(o.to_string(), (t, t));
            }
        }
        for o in program.output_values() {
            let r = find(&root, o).to_string();
            if let Some(l) = life.get_mut(&r) {
                l.1 = last; // read after the last step
            }
        }
        // Banks, in step order: a step's outputs go to a bank none of its stored
        // inputs is in (program inputs start in bank 0) — of those, the one whose
        // peak of live bytes grows least by holding the output over its lifetime
        // (each bank is sized by its own peak, so this keeps their sum small),
        // the lowest on ties; a new bank when every one is read or would pass `cap`.
        let len_of = |v: &str| program.shape(v).map_or(0, |s| s.iter().product::<usize>());
        let padded = |v: &str| len_of(v).div_ceil(ALIGN).max(1) * ALIGN;
        let mut bank_of: HashMap<String, usize> = program.inputs.iter().map(|i| (i.name.clone(), 0)).collect();
        if banked {
            // Live floats per bank per step, and each bank's peak.
            let mut live: Vec<Vec<usize>> = vec![vec![0; last + 1]];
            let mut peak: Vec<usize> = vec![0];
            fn hold(live: &mut [Vec<usize>], peak: &mut [usize], bank: usize, (t0, t1): (usize, usize), n: usize) {
                for x in &mut live[bank][t0..=t1] {
                    *x = x.saturating_add(n);
                }
                peak[bank] = peak[bank].max(live[bank][t0..=t1].iter().copied().max().unwrap_or(0));
            }
            for i in &program.inputs {
                hold(&mut live, &mut peak, 0, life[&i.name], padded(&i.name));
            }
            for s in steps.iter().filter(|s| !s.alias) {
                let n = &nodes[s.node];
                let read: Vec<usize> = n.inputs.iter().filter_map(|i| bank_of.get(find(&root, i)).copied()).collect();
                let outputs = match s.fused {
                    Some((a, _)) => &nodes[a].outputs,
                    None => &n.outputs,
                };
                let need: Vec<((usize, usize), usize)> =
                    outputs.iter().filter_map(|o| life.get(o).map(|&l| (l, padded(o)))).collect();
                let growth = |b: usize| -> usize {
                    let mut added = vec![0usize; last + 1];
                    for &((t0, t1), n) in &need {
                        added[t0..=t1].iter_mut().for_each(|x| *x = x.saturating_add(n));
                    }
                    let top = live[b].iter().zip(&added).map(|(l, a)| l.saturating_add(*a)).max().unwrap_or(0);
                    top.saturating_sub(peak[b])
                };
                let fits = |b: usize| cap.is_none_or(|c| peak[b].saturating_add(growth(b)) <= c);
                let allowed = (0..live.len()).filter(|b| !read.contains(b) && fits(*b));
                let bank = match allowed.min_by_key(|&b| (growth(b), b)) {
                    Some(b) => b,
                    None => {
                        live.push(vec![0; last + 1]);
                        peak.push(0);
                        live.len() - 1
                    }
                };
                for (o, &(l, n)) in outputs.iter().zip(&need) {
                    bank_of.insert(o.clone(), bank);
                    hold(&mut live, &mut peak, bank, l, n);
                }
            }
        }
        let mut values: Vec<(String, usize, (usize, usize))> =
            life.into_iter().map(|(v, l)| (v.clone(), len_of(&v), l)).collect();
        values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

        let lifetimes: HashMap<String, (usize, usize)> = values.iter().map(|(v, _, l)| (v.clone(), *l)).collect();
        let mut placed: Vec<(Slot, (usize, usize))> = Vec::new();
        let mut slots = HashMap::new();
        let mut banks: Vec<usize> = vec![0];
        for (name, n, l) in values {
            let bank = bank_of.get(&name).copied().unwrap_or(0); // CPU plans: all in bank 0
            let size = n.div_ceil(ALIGN).max(1) * ALIGN;
            // Lowest aligned offset of the bank that overlaps no placed value alive at the same time.
            let mut conflicts: Vec<Slot> =
                placed.iter().filter(|(s, pl)| s.bank == bank && pl.0 <= l.1 && l.0 <= pl.1).map(|(s, _)| *s).collect();
            conflicts.sort_by_key(|s| s.offset);
            // Saturating: a plan past usize (4 G floats on wasm32) ends in a bank of
            // usize::MAX, which the runtime refuses, rather than wrapping.
            let mut offset: usize = 0;
            for c in conflicts {
                let c_size = c.len.div_ceil(ALIGN).max(1) * ALIGN;
                if offset.saturating_add(size) <= c.offset {
                    break;
                }
                offset = offset.max(c.offset.saturating_add(c_size));
            }
            let slot = Slot { bank, offset, len: n };
            if banks.len() <= bank {
                banks.resize(bank + 1, 0);
            }
            banks[bank] = banks[bank].max(offset.saturating_add(size));
            placed.push((slot, l));
            slots.insert(name, slot);
        }
        // Every bank holds something (a device buffer may not be empty).
        banks.iter_mut().for_each(|b| *b = (*b).max(ALIGN));
        let len = banks.iter().fold(0usize, |a, &b| a.saturating_add(b));
        // Views get their root's slot.
        for v in root.keys() {
            let r = find(&root, v).to_string();
            if let Some(&s) = slots.get(&r) {
                slots.insert(v.to_string(), s);
            }
        }
        let peak_live = (0..=last)
            .map(|t| placed.iter().filter(|(_, l)| l.0 <= t && t <= l.1).map(|(s, _)| s.len).sum::<usize>())
            .max()
            .unwrap_or(0);
        Arena { slots, banks, len, peak_live, lifetimes }
    }
}

/// The value a chain of views starts from.
fn find<'a>(root: &HashMap<&'a str, &'a str>, mut v: &'a str) -> &'a str {
    while let Some(&r) = root.get(v) {
        v = r;
    }
    v
}
