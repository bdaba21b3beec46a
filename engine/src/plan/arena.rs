//! Memory planning: one arena for every intermediate value, offsets chosen by
//! liveness, greedy by size (largest first, lowest offset that overlaps no
//! live value) — the scheme of TFLite's and ExecuTorch's planners.

use std::collections::HashMap;

use super::Step;
use crate::program::Program;

/// Offsets are multiples of this many f32 (256 bytes: the GPU's storage
/// binding offset alignment).
pub const ALIGN: usize = 64;

/// Where a value lives: `len` f32 from `offset` (both in elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub offset: usize,
    pub len: usize,
}

/// The planned arena.
#[derive(Debug, Clone, Default)]
pub struct Arena {
    /// Every program input and node output (views share their source's slot).
    pub slots: HashMap<String, Slot>,
    /// Arena length in f32.
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

    pub(super) fn plan(program: &Program, steps: &[Step]) -> Arena {
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
        let len_of = |v: &str| program.shape(v).map_or(0, |s| s.iter().product::<usize>());
        let mut values: Vec<(String, usize, (usize, usize))> =
            life.into_iter().map(|(v, l)| (v.clone(), len_of(&v), l)).collect();
        values.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

        let lifetimes: HashMap<String, (usize, usize)> = values.iter().map(|(v, _, l)| (v.clone(), *l)).collect();
        let mut placed: Vec<(Slot, (usize, usize))> = Vec::new();
        let mut slots = HashMap::new();
        let mut len = 0;
        for (name, n, l) in values {
            let size = n.div_ceil(ALIGN).max(1) * ALIGN;
            // Lowest aligned offset that overlaps no placed value alive at the same time.
            let mut conflicts: Vec<Slot> =
                placed.iter().filter(|(_, pl)| pl.0 <= l.1 && l.0 <= pl.1).map(|(s, _)| *s).collect();
            conflicts.sort_by_key(|s| s.offset);
            let mut offset = 0;
            for c in conflicts {
                let c_size = c.len.div_ceil(ALIGN).max(1) * ALIGN;
                if offset + size <= c.offset {
                    break;
                }
                offset = offset.max(c.offset + c_size);
            }
            let slot = Slot { offset, len: n };
            len = len.max(offset + size);
            placed.push((slot, l));
            slots.insert(name, slot);
        }
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
        Arena { slots, len, peak_live, lifetimes }
    }
}

/// The value a chain of views starts from.
fn find<'a>(root: &HashMap<&'a str, &'a str>, mut v: &'a str) -> &'a str {
    while let Some(&r) = root.get(v) {
        v = r;
    }
    v
}
