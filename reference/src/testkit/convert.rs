//! Conversions between `f32` and `f64` values and weight sets: the f64 reference runs
//! on exactly the `f32` numbers the kernels see.

use crate::{LayerWeights, OwnedLayerWeights};

/// Widens every value to `f64` (exact).
pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x)).collect()
}

/// Rounds every value to `f32`.
pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// An owned copy of `w` with every part (matrices, biases, projection, peepholes)
/// passed through `f`.
pub fn map_weights<A, B>(
    w: &LayerWeights<'_, A>,
    f: impl Fn(&[A]) -> Vec<B>,
) -> OwnedLayerWeights<B> {
    w.map(f)
}

/// The weights widened to `f64` (exact).
pub fn weights_f64(w: &LayerWeights<'_, f32>) -> OwnedLayerWeights<f64> {
    map_weights(w, to_f64)
}

/// The weights rounded to `f32`.
pub fn weights_f32(w: &LayerWeights<'_, f64>) -> OwnedLayerWeights<f32> {
    map_weights(w, to_f32)
}
