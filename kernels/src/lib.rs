//! rnn-kernels
