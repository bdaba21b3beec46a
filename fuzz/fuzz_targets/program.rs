//! Fuzzing of the program loader: no panic, hang or huge allocation on any
//! input; an accepted program is internally consistent (every node's inputs
//! are defined before it, every value has a shape, outputs exist) and its plan
//! places every value.
#![no_main]

use std::collections::HashSet;

use kinema_engine::plan::Plan;
use kinema_engine::program::Program;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(program) = Program::from_json(text) else { return };
    let mut defined: HashSet<&str> = program.inputs.iter().map(|i| i.name.as_str()).collect();
    defined.extend(program.constants.iter().map(|c| c.name.as_str()));
    defined.extend(program.parameters.iter().map(|p| p.name.as_str()));
    for node in &program.nodes {
        for i in &node.inputs {
            assert!(defined.contains(i.as_str()), "{i} read before defined");
        }
        for o in &node.outputs {
            assert!(defined.insert(o), "{o} defined twice");
            assert!(program.shape(o).is_some());
        }
    }
    for v in program.output_values() {
        assert!(defined.contains(v.as_str()));
    }
    let plan = Plan::new(&program, None);
    assert!(plan.arena.len >= plan.arena.peak_live);
});
