//! Flow-matching schedulers, ported from diffusers' math and read from its
//! `scheduler_config.json`: `FlowMatchEulerDiscreteScheduler` (with `shift`)
//! and `UniPCMultistepScheduler` (`prediction_type="flow_prediction"`,
//! `use_flow_sigmas`, `flow_shift`, orders 1–2 and up, `bh1`/`bh2`). Samples
//! are updated in f32 as diffusers does; step coefficients are computed in f64.

use serde_json::Value;

use crate::error::{Error, Result};

/// UniPC's B(h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolverType {
    Bh1,
    Bh2,
}

/// What `scheduler_config.json` says, for the schedulers Kinema runs.
#[derive(Debug, Clone, PartialEq)]
pub enum SchedulerConfig {
    FlowMatchEuler {
        num_train_timesteps: usize,
        shift: f64,
    },
    UniPc {
        num_train_timesteps: usize,
        flow_shift: f64,
        solver_order: usize,
        solver_type: SolverType,
        lower_order_final: bool,
        /// `final_sigmas_type == "zero"` (else the last sigma repeats: "sigma_min").
        final_sigma_zero: bool,
        disable_corrector: Vec<usize>,
    },
}

fn bad(msg: String) -> Error {
    Error::Invalid(format!("scheduler_config.json: {msg}"))
}

impl SchedulerConfig {
    /// The training schedule's length (timesteps are in `0..=` it).
    pub fn num_train_timesteps(&self) -> usize {
        match *self {
            SchedulerConfig::FlowMatchEuler { num_train_timesteps, .. }
            | SchedulerConfig::UniPc { num_train_timesteps, .. } => num_train_timesteps,
        }
    }

    /// The same schedule shift under another sampler: `"euler"`
    /// (FlowMatchEulerDiscrete) or `"unipc"` (UniPC, diffusers' Wan defaults:
    /// order 2, bh2, lower-order final steps, final sigma zero).
    pub fn as_kind(&self, kind: &str) -> Result<SchedulerConfig> {
        let (num_train_timesteps, shift) = match *self {
            SchedulerConfig::FlowMatchEuler { num_train_timesteps, shift } => (num_train_timesteps, shift),
            SchedulerConfig::UniPc { num_train_timesteps, flow_shift, .. } => (num_train_timesteps, flow_shift),
        };
        match kind {
            "euler" => Ok(SchedulerConfig::FlowMatchEuler { num_train_timesteps, shift }),
            "unipc" => Ok(match self {
                unipc @ SchedulerConfig::UniPc { .. } => unipc.clone(),
                _ => SchedulerConfig::UniPc {
                    num_train_timesteps,
                    flow_shift: shift,
                    solver_order: 2,
                    solver_type: SolverType::Bh2,
                    lower_order_final: true,
                    final_sigma_zero: true,
                    disable_corrector: Vec::new(),
                },
            }),
            other => Err(Error::Invalid(format!("scheduler {other:?}: euler or unipc"))),
        }
    }

    /// Reads a diffusers `scheduler_config.json`.
    pub fn from_json(text: &str) -> Result<SchedulerConfig> {
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not JSON: {e}")))?;
        let class = v["_class_name"].as_str().ok_or_else(|| bad("no _class_name".into()))?;
        let num = |k: &str, d: f64| v.get(k).and_then(Value::as_f64).unwrap_or(d);
        let flag = |k: &str, d: bool| v.get(k).and_then(Value::as_bool).unwrap_or(d);
        let text = |k: &str, d: &str| v.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
        let steps = num("num_train_timesteps", 1000.0);
        if !(1.0..=1e6).contains(&steps) || steps.fract() != 0.0 {
            return Err(bad(format!("num_train_timesteps {steps}")));
        }
        let num_train_timesteps = steps as usize;
        let positive =
            |k: &str, x: f64| if x.is_finite() && x > 0.0 { Ok(x) } else { Err(bad(format!("{k} must be > 0"))) };
        match class {
            "FlowMatchEulerDiscreteScheduler" => {
                for k in [
                    "use_dynamic_shifting",
                    "invert_sigmas",
                    "use_karras_sigmas",
                    "use_exponential_sigmas",
                    "use_beta_sigmas",
                    "stochastic_sampling",
                ] {
                    if flag(k, false) {
                        return Err(bad(format!("{k} is not supported")));
                    }
                }
                if v.get("shift_terminal").is_some_and(|x| !x.is_null()) {
                    return Err(bad("shift_terminal is not supported".into()));
                }
                Ok(SchedulerConfig::FlowMatchEuler {
                    num_train_timesteps,
                    shift: positive("shift", num("shift", 1.0))?,
                })
            }
            "UniPCMultistepScheduler" => {
                if text("prediction_type", "epsilon") != "flow_prediction" || !flag("use_flow_sigmas", false) {
                    return Err(bad(
                        "UniPC is supported with prediction_type=\"flow_prediction\" and use_flow_sigmas".into()
                    ));
                }
                if !flag("predict_x0", true) || flag("thresholding", false) || flag("use_dynamic_shifting", false) {
                    return Err(bad("predict_x0=false, thresholding and dynamic shifting are not supported".into()));
                }
                let solver_type = match text("solver_type", "bh2").as_str() {
                    "bh1" => SolverType::Bh1,
                    "bh2" => SolverType::Bh2,
                    other => return Err(bad(format!("solver_type {other:?}"))),
                };
                let order = num("solver_order", 2.0);
                if !(1.0..=3.0).contains(&order) || order.fract() != 0.0 {
                    return Err(bad(format!("solver_order {order} (1–3)")));
                }
                let final_sigma_zero = match text("final_sigmas_type", "zero").as_str() {
                    "zero" => true,
                    "sigma_min" => false,
                    other => return Err(bad(format!("final_sigmas_type {other:?}"))),
                };
                let disable_corrector = v
                    .get("disable_corrector")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().filter_map(Value::as_u64).map(|x| x as usize).collect())
                    .unwrap_or_default();
                Ok(SchedulerConfig::UniPc {
                    num_train_timesteps,
                    flow_shift: positive("flow_shift", num("flow_shift", 1.0))?,
                    solver_order: order as usize,
                    solver_type,
                    lower_order_final: flag("lower_order_final", true),
                    final_sigma_zero,
                    disable_corrector,
                })
            }
            other => Err(bad(format!(
                "scheduler {other:?} is not supported (FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler)"
            ))),
        }
    }
}

/// A scheduler set up for a number of inference steps.
#[derive(Debug, Clone)]
pub struct Scheduler {
    config: SchedulerConfig,
    /// The timestep the model sees at each step.
    pub timesteps: Vec<f32>,
    /// One more than the steps: the last is where sampling ends.
    pub sigmas: Vec<f32>,
    step_index: usize,
    // UniPC state.
    model_outputs: Vec<Option<Vec<f32>>>,
    last_sample: Option<Vec<f32>>,
    lower_order_nums: usize,
    this_order: usize,
}

fn shifted(shift: f64, s: f64) -> f64 {
    shift * s / (1.0 + (shift - 1.0) * s)
}

fn linspace(a: f64, b: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![a];
    }
    (0..n).map(|i| a + (b - a) * i as f64 / (n - 1) as f64).collect()
}

impl Scheduler {
    /// `set_timesteps(steps)`.
    pub fn new(config: &SchedulerConfig, steps: usize) -> Result<Scheduler> {
        Scheduler::with(config, steps, None)
    }

    /// `set_timesteps(sigmas=…)`: explicit sigmas before the shift, one step
    /// each (few-step models give theirs: `[1.0, 0.75, 0.5, 0.25]` is
    /// `--timesteps 1000,750,500,250`); each in (0, 1], decreasing.
    pub fn with_sigmas(config: &SchedulerConfig, sigmas: &[f64]) -> Result<Scheduler> {
        let decreasing = sigmas.windows(2).all(|w| w[0] > w[1]);
        if sigmas.iter().any(|s| !(*s > 0.0 && *s <= 1.0)) || !decreasing {
            return Err(Error::Invalid(format!(
                "sigmas {sigmas:?}: each in (0, 1], decreasing (timesteps in (0, num_train_timesteps])"
            )));
        }
        Scheduler::with(config, sigmas.len(), Some(sigmas))
    }

    fn with(config: &SchedulerConfig, steps: usize, given: Option<&[f64]>) -> Result<Scheduler> {
        if steps == 0 || steps > 10_000 {
            return Err(Error::Invalid(format!("{steps} inference steps (1–10000)")));
        }
        let (timesteps, sigmas, order) = match *config {
            SchedulerConfig::FlowMatchEuler { num_train_timesteps: n, shift } => {
                let n = n as f64;
                let unshifted: Vec<f32> = match given {
                    Some(s) => s.iter().map(|&s| s as f32).collect(),
                    None => {
                        // sigma_max and sigma_min of the shifted training schedule, then shifted again, as diffusers does.
                        let (max, min) = (shifted(shift, 1.0), shifted(shift, 1.0 / n));
                        linspace(max * n, min * n, steps).iter().map(|t| *t as f32 / n as f32).collect()
                    }
                };
                let sig: Vec<f32> = unshifted.iter().map(|&s| shifted(shift, s as f64) as f32).collect();
                let t: Vec<f32> = sig.iter().map(|s| s * n as f32).collect();
                let mut s = sig;
                s.push(0.0);
                (t, s, 0)
            }
            SchedulerConfig::UniPc { num_train_timesteps: n, flow_shift, final_sigma_zero, solver_order, .. } => {
                let mut sig: Vec<f64> = match given {
                    Some(s) => s.to_vec(),
                    None => linspace(1.0, 1.0 / n as f64, steps + 1)[..steps].to_vec(),
                };
                sig.iter_mut().for_each(|s| *s = shifted(flow_shift, *s));
                if (sig[0] - 1.0).abs() < 1e-6 {
                    sig[0] -= 1e-6;
                }
                // diffusers casts the timesteps to int64 (truncation).
                let t: Vec<f32> = sig.iter().map(|s| (s * n as f64).trunc() as f32).collect();
                let last = if final_sigma_zero { 0.0 } else { *sig.last().expect("steps ≥ 1") };
                let mut s: Vec<f32> = sig.iter().map(|&x| x as f32).collect();
                s.push(last as f32);
                (t, s, solver_order)
            }
        };
        Ok(Scheduler {
            config: config.clone(),
            timesteps,
            sigmas,
            step_index: 0,
            model_outputs: vec![None; order],
            last_sample: None,
            lower_order_nums: 0,
            this_order: 0,
        })
    }

    /// The sample after one step, from the model's output at `sample`.
    pub fn step(&mut self, model_output: &[f32], sample: &[f32]) -> Result<Vec<f32>> {
        if model_output.len() != sample.len() {
            return Err(Error::Invalid("scheduler: model output and sample differ in length".into()));
        }
        if self.step_index >= self.timesteps.len() {
            return Err(Error::Invalid("scheduler: every step has been taken".into()));
        }
        let out = match self.config.clone() {
            SchedulerConfig::FlowMatchEuler { .. } => {
                let dt = self.sigmas[self.step_index + 1] - self.sigmas[self.step_index];
                sample.iter().zip(model_output).map(|(x, v)| x + dt * v).collect()
            }
            SchedulerConfig::UniPc { solver_order, solver_type, lower_order_final, disable_corrector, .. } => {
                self.unipc_step(model_output, sample, solver_order, solver_type, lower_order_final, &disable_corrector)
            }
        };
        self.step_index += 1;
        Ok(out)
    }

    /// (alpha, sigma) of flow sigma `s`: (1 − s, s).
    fn alpha_sigma(&self, i: usize) -> (f64, f64) {
        let s = self.sigmas[i] as f64;
        (1.0 - s, s)
    }

    fn lambda(&self, i: usize) -> f64 {
        let (a, s) = self.alpha_sigma(i);
        a.ln() - s.ln()
    }

    fn unipc_step(
        &mut self,
        model_output: &[f32],
        sample: &[f32],
        solver_order: usize,
        solver_type: SolverType,
        lower_order_final: bool,
        disable_corrector: &[usize],
    ) -> Vec<f32> {
        let i = self.step_index;
        let use_corrector = i > 0 && !disable_corrector.contains(&(i - 1)) && self.last_sample.is_some();
        // flow_prediction, predict_x0: x0 = sample − sigma · v.
        let s = self.sigmas[i];
        let converted: Vec<f32> = sample.iter().zip(model_output).map(|(x, v)| x - s * v).collect();
        let mut sample = sample.to_vec();
        if use_corrector {
            sample = self.corrector(&converted, &sample, self.this_order, solver_type);
        }
        self.model_outputs.rotate_left(1);
        *self.model_outputs.last_mut().expect("order ≥ 1") = Some(converted);
        let this_order = if lower_order_final { solver_order.min(self.timesteps.len() - i) } else { solver_order };
        self.this_order = this_order.min(self.lower_order_nums + 1);
        self.last_sample = Some(sample.clone());
        let prev = self.predictor(&sample, self.this_order, solver_type);
        if self.lower_order_nums < solver_order {
            self.lower_order_nums += 1;
        }
        prev
    }

    /// (rks, D1s divided lazily: the previous outputs and their rk), R rows and b, for an update
    /// from sigma index `s0` to `t`, using outputs `m[-(k+1)]` at sigma indices `s0 − k` (predictor)
    /// or `s0 − k` shifted by one (corrector: `first_prev`).
    fn coefficients(
        &self,
        t: usize,
        s0: usize,
        order: usize,
        first_prev: usize,
        solver_type: SolverType,
    ) -> Coefficients {
        let (lambda_t, lambda_s0) = (self.lambda(t), self.lambda(s0));
        let h = lambda_t - lambda_s0;
        let mut rks = Vec::new();
        for k in 1..order {
            rks.push((self.lambda(first_prev - (k - 1)) - lambda_s0) / h);
        }
        rks.push(1.0);
        let hh = -h; // predict_x0
        let h_phi_1 = hh.exp_m1();
        let mut h_phi_k = h_phi_1 / hh - 1.0;
        let b_h = match solver_type {
            SolverType::Bh1 => hh,
            SolverType::Bh2 => hh.exp_m1(),
        };
        let mut factorial = 1.0;
        let mut r = Vec::new();
        let mut b = Vec::new();
        for k in 1..=order {
            r.push(rks.iter().map(|rk| rk.powi(k as i32 - 1)).collect::<Vec<f64>>());
            b.push(h_phi_k * factorial / b_h);
            factorial *= (k + 1) as f64;
            h_phi_k = h_phi_k / hh - 1.0 / factorial;
        }
        Coefficients { rks, r, b, h_phi_1, b_h }
    }

    fn predictor(&self, x: &[f32], order: usize, solver_type: SolverType) -> Vec<f32> {
        let i = self.step_index;
        let c = self.coefficients(i + 1, i, order, i.saturating_sub(1), solver_type);
        let (alpha_t, sigma_t) = self.alpha_sigma(i + 1);
        let (_, sigma_s0) = self.alpha_sigma(i);
        let m0 = self.output(0);
        // D1_k = (m_{-(k+1)} − m0) / rk; order 2 uses rho = 0.5, higher orders solve R[:-1,:-1] rho = b[:-1].
        let rhos: Vec<f64> = match order {
            1 => vec![],
            2 => vec![0.5],
            _ => solve(
                &c.r[..order - 1].iter().map(|row| row[..order - 1].to_vec()).collect::<Vec<_>>(),
                &c.b[..order - 1],
            ),
        };
        let ratio = (sigma_t / sigma_s0) as f32;
        let a = (alpha_t * c.h_phi_1) as f32;
        let ab = (alpha_t * c.b_h) as f32;
        let prev: Vec<&Vec<f32>> = (1..order).map(|k| self.output(k)).collect();
        (0..x.len())
            .map(|j| {
                let mut res = 0f32;
                for (k, m) in prev.iter().enumerate() {
                    res += rhos[k] as f32 * ((m[j] - m0[j]) / c.rks[k] as f32);
                }
                let x_t_ = ratio * x[j] - a * m0[j];
                // Order 1 has no correction term. (diffusers multiplies B(h) by a
                // zero anyway, which is NaN when B(h) = −∞: bh1 stepping to sigma 0.)
                if prev.is_empty() { x_t_ } else { x_t_ - ab * res }
            })
            .collect()
    }

    fn corrector(&self, model_t: &[f32], this_sample: &[f32], order: usize, solver_type: SolverType) -> Vec<f32> {
        let i = self.step_index;
        let x = self.last_sample.as_ref().expect("checked");
        let c = self.coefficients(i, i - 1, order, i.saturating_sub(2), solver_type);
        let _ = this_sample;
        let (alpha_t, sigma_t) = self.alpha_sigma(i);
        let (_, sigma_s0) = self.alpha_sigma(i - 1);
        let m0 = self.output(0);
        let rhos: Vec<f64> = if order == 1 { vec![0.5] } else { solve(&c.r, &c.b) };
        let ratio = (sigma_t / sigma_s0) as f32;
        let a = (alpha_t * c.h_phi_1) as f32;
        let ab = (alpha_t * c.b_h) as f32;
        let prev: Vec<&Vec<f32>> = (1..order).map(|k| self.output(k)).collect();
        let last = *rhos.last().expect("order ≥ 1") as f32;
        (0..x.len())
            .map(|j| {
                let mut res = 0f32;
                for (k, m) in prev.iter().enumerate() {
                    res += rhos[k] as f32 * ((m[j] - m0[j]) / c.rks[k] as f32);
                }
                let x_t_ = ratio * x[j] - a * m0[j];
                x_t_ - ab * (res + last * (model_t[j] - m0[j]))
            })
            .collect()
    }

    /// The converted model output `k` steps back (0 = the newest).
    fn output(&self, k: usize) -> &Vec<f32> {
        self.model_outputs[self.model_outputs.len() - 1 - k]
            .as_ref()
            .expect("warm-up keeps the order within the history")
    }
}

struct Coefficients {
    rks: Vec<f64>,
    r: Vec<Vec<f64>>,
    b: Vec<f64>,
    h_phi_1: f64,
    b_h: f64,
}

/// Solves the small dense system `a · x = b` (Gaussian elimination, partial pivoting).
fn solve(a: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let n = b.len();
    let mut m: Vec<Vec<f64>> = a.iter().zip(b).map(|(row, &v)| row.iter().copied().chain([v]).collect()).collect();
    for col in 0..n {
        let p = (col..n).max_by(|&i, &j| m[i][col].abs().total_cmp(&m[j][col].abs())).expect("n ≥ 1");
        m.swap(col, p);
        let pivot = m[col].clone();
        for row in m.iter_mut().skip(col + 1) {
            let f = row[col] / pivot[col];
            row.iter_mut().zip(&pivot).skip(col).for_each(|(r, p)| *r -= f * p);
        }
    }
    let mut x = vec![0.0; n];
    for row in (0..n).rev() {
        let s: f64 = (row + 1..n).map(|c| m[row][c] * x[c]).sum();
        x[row] = (m[row][n] - s) / m[row][row];
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bh1_stepping_to_sigma_zero_lands_on_the_x0_prediction() {
        let config = SchedulerConfig::UniPc {
            num_train_timesteps: 1000,
            flow_shift: 2.0,
            solver_order: 1,
            solver_type: SolverType::Bh1,
            lower_order_final: true,
            final_sigma_zero: true,
            disable_corrector: vec![],
        };
        let mut s = Scheduler::new(&config, 1).unwrap();
        let (x, v) = ([0.5f32, -1.0], [0.25f32, 2.0]);
        let out = s.step(&v, &x).unwrap();
        let sigma = s.sigmas[0];
        for j in 0..2 {
            assert!((out[j] - (x[j] - sigma * v[j])).abs() < 1e-6, "{out:?}");
        }
    }
}
