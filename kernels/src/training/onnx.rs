//! Gradients in ONNX layout (placeholder, filled in below).

/// Where [`PackedRnn::backward_onnx`](crate::PackedRnn::backward_onnx) writes.
#[derive(Debug)]
pub struct OnnxGradsMut<'a> {
    /// `dW` `[D, G*H, I]`.
    pub dw: &'a mut [f32],
}
