//! `wgtrain bench --profile`: where a model's CPU step goes, op by op ([`crate::nn::profile`]).

use crate::data::DataSplit;
use crate::device::Device;
use crate::error::{Error, Result};
use crate::experiments::runner::{first_batch, steady_steps};
use crate::nn::profile::OpProfile;
use crate::nn::{Executor, Model, OptimConfig, Weights};

/// A model's training step and its evaluation graph's inference step, op by op.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelProfile {
    pub train: OpProfile,
    pub inference: OpProfile,
}

/// Profile `model` at `batch` on the CPU: three warm-up steps, then steps for at least `seconds` (and 3),
/// training (Adam, as `bench` times it) and then inference with the trained weights.
pub fn profile_model(
    device: &Device,
    model: &Model,
    data: &DataSplit,
    batch: usize,
    seconds: f64,
) -> Result<ModelProfile> {
    let (x, y) = first_batch(&data.train, &data.normalization, batch);
    let run = |exec: &mut Box<dyn Executor>, train: bool| -> Result<OpProfile> {
        steady_steps(exec.as_mut(), &x, &y, train, 0.0)?; // warm-up (3 steps)
        if !exec.set_profiling(true) {
            return Err(Error::Config(format!(
                "--profile: the {} executor cannot time its ops (the CPU's can: --device cpu)",
                device.kind()
            )));
        }
        steady_steps(exec.as_mut(), &x, &y, train, seconds)?;
        let profile = exec.take_profile().expect("profiling was switched on");
        exec.set_profiling(false);
        Ok(profile)
    };
    let mut exec = device.executor(model, &model.init_params(0), OptimConfig::adam(1e-3), batch)?;
    let train = run(&mut exec, true)?;
    let weights = Weights {
        params: exec.params()?,
        state: exec.state()?,
    };
    drop(exec);
    let mut exec = device.inference_executor(model, &weights, batch)?;
    let inference = run(&mut exec, false)?;
    Ok(ModelProfile { train, inference })
}

/// The table `bench --profile` prints for one profile.
pub fn table(title: &str, p: &OpProfile) -> String {
    let pct = |us: f64| 100.0 * us / p.step_us.max(f64::MIN_POSITIVE);
    let mut s = format!(
        "\n{title}: {} steps, {:.1} us/step; ops {:.1} us, executor {:.1} us\n{:<5} {:<22} {:<18} {:<32} {:>11} {:>11} {:>7}\n",
        p.steps,
        p.step_us,
        p.ops_us(),
        p.step_us - p.ops_us(),
        "node",
        "path",
        "op",
        "shape",
        "forward us",
        "backward us",
        "% step"
    );
    for o in &p.ops {
        s += &format!(
            "{:<5} {:<22} {:<18} {:<32} {:>11.1} {:>11.1} {:>7.1}\n",
            o.node.map_or("-".into(), |n| n.to_string()),
            o.path,
            o.kind,
            o.shape,
            o.forward_us,
            o.backward_us,
            pct(o.forward_us + o.backward_us)
        );
    }
    let kinds: Vec<String> = p
        .by_kind()
        .iter()
        .map(|(k, us)| format!("{k} {:.1} %", pct(*us)))
        .collect();
    s += &format!("by op: {}\n", kinds.join(", "));
    s
}
