//! Repeated calls with the same `Workspace` allocate nothing.
//!
//! A counting `#[global_allocator]` (this test file is its own binary, so it affects
//! nothing else) counts every allocation made while `COUNTING` is on by the threads
//! that run our calls: the test's own thread and the workers of the rayon pools it
//! builds (marked by a thread-local flag). The test harness's own threads allocate at
//! times of their own choosing (its main thread waiting for the test, for one), which
//! made the count flaky when every thread counted. Everything runs inside ONE
//! `#[test]`.
//!
//! - 1-thread rayon pool: after one warm-up call, `PackedRnn::forward` (every cell kind,
//!   2 layers, bidirectional, sequence lengths, both layouts, h0/c0 given; f32 and
//!   int8 weights) and
//!   `PackedCell::step` make **zero** allocations, also for smaller shapes afterwards.
//! - The same for a training step (`forward_train` then `backward`, every cell kind,
//!   both `Activations` modes), and for the output layer's forward and backward.
//! - 2-thread rayon pool on a shape large enough to be split across a team: also
//!   **zero** (the team is forked with `rayon::join`, whose jobs live on the stack).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rnn_kernels::{
    ActivationQuant, Activations, CellKind, Direction, GradientsMut, LayerGradsMut,
    OutputActivation, OutputConfig, OutputGrads, OwnedLayerWeights, PackedCell, PackedOutput,
    PackedRnn, RnnConfig, SeqShape, SequenceInput, SequenceOutputMut, StepInput, StepOutputMut,
    TensorLayout, TrainingWorkspace, WeightType, Workspace,
};
use rnn_reference::testkit::fixture::Sawtooth;
use rnn_reference::testkit::variants;

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread runs our calls (the test thread, the pools' workers).
    static OURS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether an allocation now counts.
fn counts() -> bool {
    // `try_with`: the allocator may run while this thread's locals are torn down.
    COUNTING.load(Ordering::Relaxed) && OURS.try_with(|o| o.get()).unwrap_or(false)
}

/// A rayon pool of `n` threads whose workers' allocations count.
fn pool(n: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .start_handler(|_| OURS.with(|o| o.set(true)))
        .build()
        .unwrap()
}

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counts() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counts() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: caller's contract, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counts() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` (any thread).
fn count(f: impl FnOnce()) -> usize {
    ALLOCS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCS.load(Ordering::SeqCst)
}

/// Every variant, the layer-norm LSTMs included; projected LSTMs project the 37 hidden
/// units used below to 11.
fn cells() -> Vec<CellKind> {
    variants::all_with_layer_norm(11)
}

/// Fixed values in [-0.1, 0.1].
fn vals(n: usize, seed: usize) -> Vec<f32> {
    Sawtooth::TINY.vals(n, seed)
}

/// Buffers for one forward call, allocated outside the measured region.
struct Call {
    shape: SeqShape,
    x: Vec<f32>,
    h0: Vec<f32>,
    c0: Vec<f32>,
    lens: Vec<usize>,
    att: Vec<f32>,
    y: Vec<f32>,
    h_n: Vec<f32>,
    c_n: Vec<f32>,
}

impl Call {
    fn new(cfg: &RnnConfig, shape: SeqShape) -> Self {
        let d = shape.dims(cfg).unwrap();
        Call {
            shape,
            x: vals(d.x, 1),
            h0: vals(d.h, 2),
            c0: vals(d.c, 3),
            lens: (0..shape.batch)
                .map(|b| (b * 3) % (shape.steps + 1))
                .collect(),
            att: vals(shape.steps * shape.batch, 7),
            y: vec![0.0; d.y],
            h_n: vec![0.0; d.h],
            c_n: vec![0.0; d.c],
        }
    }

    fn run<W: WeightType>(&mut self, rnn: &PackedRnn<W>, ws: &mut Workspace) {
        let lstm = rnn.config().cell.has_cell_state();
        rnn.forward(
            ws,
            self.shape,
            SequenceInput {
                x: &self.x,
                h0: Some(&self.h0),
                c0: lstm.then_some(&self.c0[..]),
                seq_lens: Some(&self.lens),
                attention: rnn.config().cell.has_attention().then_some(&self.att[..]),
            },
            SequenceOutputMut {
                y: &mut self.y,
                h_n: Some(&mut self.h_n),
                c_n: lstm.then_some(&mut self.c_n[..]),
            },
        )
        .unwrap();
    }
}

/// Forward with weights stored as `W`, in the current rayon pool; returns the
/// allocation count of everything after the warm-up call.
fn measure_forward<W: WeightType>(cfg: RnnConfig, big: SeqShape, small: SeqShape) -> usize {
    let rnn =
        PackedRnn::<W>::pack(&cfg, &rnn_reference::views(&Sawtooth::TINY.weights(&cfg))).unwrap();
    let mut ws = Workspace::new();
    let mut a = Call::new(&cfg, big);
    let mut b = Call::new(&cfg, small);
    a.run(&rnn, &mut ws); // warm-up: the workspace grows here
    count(|| {
        for _ in 0..3 {
            a.run(&rnn, &mut ws);
            b.run(&rnn, &mut ws); // smaller shape: reuses the same workspace
        }
    })
}

fn measure_step(cfg: RnnConfig, batch: usize) -> usize {
    let w = Sawtooth::TINY.weights(&cfg);
    let cell = PackedCell::from_pytorch(&cfg, &w[0].view()).unwrap();
    let (i, h, ho) = (cfg.input_size, cfg.hidden_size, cfg.output_size());
    let lstm = cfg.cell.has_cell_state();
    let x = vals(batch * i, 1);
    let mut hs = vals(batch * ho, 2);
    let mut cs = vals(batch * h, 3);
    let att = vals(batch, 7);
    let (mut h1, mut c1) = (vec![0.0f32; batch * ho], vec![0.0f32; batch * h]);
    let mut ws = Workspace::new();
    let mut run = |ws: &mut Workspace, hs: &mut [f32], cs: &mut [f32]| {
        cell.step(
            ws,
            batch,
            StepInput {
                x: &x,
                h: hs,
                c: lstm.then_some(&cs[..]),
                attention: cfg.cell.has_attention().then_some(&att[..]),
            },
            StepOutputMut {
                h: &mut h1,
                c: lstm.then_some(&mut c1[..]),
            },
        )
        .unwrap();
        hs.copy_from_slice(&h1);
        if lstm {
            cs.copy_from_slice(&c1);
        }
    };
    run(&mut ws, &mut hs, &mut cs); // warm-up
    count(|| {
        for _ in 0..5 {
            run(&mut ws, &mut hs, &mut cs);
        }
    })
}
/// Buffers for one training step (forward and backward), allocated outside the
/// measured region.
struct TrainCall {
    call: Call,
    dy: Vec<f32>,
    dh_n: Vec<f32>,
    dc_n: Vec<f32>,
    dx: Vec<f32>,
    dh0: Vec<f32>,
    dc0: Vec<f32>,
    da: Vec<f32>,
    grads: Vec<OwnedLayerWeights<f32>>,
}

impl TrainCall {
    fn new(cfg: &RnnConfig, shape: SeqShape) -> Self {
        let d = shape.dims(cfg).unwrap();
        TrainCall {
            call: Call::new(cfg, shape),
            dy: vals(d.y, 4),
            dh_n: vals(d.h, 5),
            dc_n: vals(d.c, 6),
            dx: vec![0.0; d.x],
            dh0: vec![0.0; d.h],
            dc0: vec![0.0; d.c],
            da: vec![0.0; shape.steps * shape.batch],
            grads: Sawtooth::TINY.weights(cfg),
        }
    }

    /// A training forward and backward; `N` = the config's weight sets.
    fn run<const N: usize>(&mut self, rnn: &PackedRnn, tws: &mut TrainingWorkspace) {
        let lstm = rnn.config().cell.has_cell_state();
        let c = &mut self.call;
        rnn.forward_train(
            tws,
            c.shape,
            SequenceInput {
                x: &c.x,
                h0: Some(&c.h0),
                c0: lstm.then_some(&c.c0[..]),
                seq_lens: Some(&c.lens),
                attention: rnn.config().cell.has_attention().then_some(&c.att[..]),
            },
            SequenceOutputMut {
                y: &mut c.y,
                h_n: Some(&mut c.h_n),
                c_n: lstm.then_some(&mut c.c_n[..]),
            },
        )
        .unwrap();
        let mut it = self.grads.iter_mut().map(LayerGradsMut::from_owned);
        let mut sets: [LayerGradsMut<'_>; N] = std::array::from_fn(|_| it.next().unwrap());
        rnn.backward(
            tws,
            OutputGrads {
                dy: &self.dy,
                dh_n: Some(&self.dh_n),
                dc_n: lstm.then_some(&self.dc_n[..]),
            },
            GradientsMut {
                dx: Some(&mut self.dx),
                dh0: Some(&mut self.dh0),
                dc0: lstm.then_some(&mut self.dc0[..]),
                dattention: rnn
                    .config()
                    .cell
                    .has_attention()
                    .then_some(&mut self.da[..]),
                weights: &mut sets,
            },
        )
        .unwrap();
    }
}

/// Training steps (`N` weight sets) in the current rayon pool; the allocation count of
/// everything after the warm-up step.
fn measure_train<const N: usize>(
    cfg: RnnConfig,
    big: SeqShape,
    small: SeqShape,
    mode: Activations,
) -> usize {
    let rnn = PackedRnn::from_pytorch(&cfg, &rnn_reference::views(&Sawtooth::TINY.weights(&cfg)))
        .unwrap();
    let mut tws = TrainingWorkspace::with_activations(mode);
    let (mut a, mut b) = (TrainCall::new(&cfg, big), TrainCall::new(&cfg, small));
    a.run::<N>(&rnn, &mut tws); // warm-up: the workspace grows here
    count(|| {
        for _ in 0..2 {
            a.run::<N>(&rnn, &mut tws);
            b.run::<N>(&rnn, &mut tws); // smaller shape: same workspace
        }
    })
}

/// The output layer's forward and backward, every activation, `rows` then fewer rows
/// with the same workspace, after one warm-up call of each.
fn measure_output(rows: usize, i: usize, o: usize) -> usize {
    let mut total = 0;
    for activation in OutputActivation::ALL {
        let cfg = OutputConfig::new(i, o, activation);
        let head = PackedOutput::<f32>::pack(&cfg, &vals(o * i, 1), Some(&vals(o, 2))).unwrap();
        let (x, dy) = (vals(rows * i, 3), vals(rows * o, 4));
        let (mut y, mut dx, mut dw, mut db) = (
            vec![0.0f32; rows * o],
            vec![0.0f32; rows * i],
            vec![0.0f32; o * i],
            vec![0.0f32; o],
        );
        let mut ws = Workspace::new();
        // The backward reads a forward's output from its own buffer (any values do).
        let ys = vals(rows * o, 5);
        let mut call = |n: usize, ws: &mut Workspace| {
            head.forward(ws, n, &x[..n * i], &mut y[..n * o]).unwrap();
            head.backward(
                ws,
                n,
                &x[..n * i],
                &ys[..n * o],
                &dy[..n * o],
                &mut dx[..n * i],
                &mut dw,
                Some(&mut db),
            )
            .unwrap();
        };
        call(rows, &mut ws);
        total += count(|| {
            for n in [rows, rows / 2] {
                call(n, &mut ws);
            }
        });
        // int8 weights (forward only), each activation scheme: the codes' scratch.
        for scheme in ActivationQuant::ALL {
            let head = PackedOutput::<i8>::pack(&cfg, &vals(o * i, 1), Some(&vals(o, 2)))
                .unwrap()
                .with_activation_quant(scheme);
            let mut ws = Workspace::new();
            head.forward(&mut ws, rows, &x, &mut y).unwrap();
            total += count(|| {
                for n in [rows, rows / 2] {
                    head.forward(&mut ws, n, &x[..n * i], &mut y[..n * o])
                        .unwrap();
                }
            });
        }
    }
    total
}

#[test]
fn no_allocations_after_warm_up() {
    // ---- one thread: must be exactly zero ----
    OURS.with(|o| o.set(true));
    let one = pool(1);
    one.install(|| {
        for cell in cells() {
            for layout in [TensorLayout::TimeMajor, TensorLayout::BatchMajor] {
                let cfg = RnnConfig::new(cell, 13, 37)
                    .with_layers(2)
                    .with_direction(Direction::Bidirectional);
                let (big, small) = (
                    SeqShape::new(6, 7).with_layout(layout),
                    SeqShape::new(4, 3).with_layout(layout),
                );
                let n = measure_forward::<f32>(cfg, big, small);
                assert_eq!(
                    n, 0,
                    "forward {cell:?} {layout:?}: {n} allocations after warm-up"
                );
                let n = measure_forward::<i8>(cfg, big, small);
                assert_eq!(
                    n, 0,
                    "int8 forward {cell:?} {layout:?}: {n} allocations after warm-up"
                );
            }
            for mode in [Activations::Keep, Activations::Recompute] {
                let cfg = RnnConfig::new(cell, 13, 37)
                    .with_layers(2)
                    .with_direction(Direction::Bidirectional);
                let layout = TensorLayout::BatchMajor;
                let n = measure_train::<4>(
                    cfg,
                    SeqShape::new(6, 7).with_layout(layout),
                    SeqShape::new(4, 3).with_layout(layout),
                    mode,
                );
                assert_eq!(
                    n, 0,
                    "training {cell:?} {mode:?}: {n} allocations after warm-up"
                );
            }
            let cfg = RnnConfig::new(cell, 13, 37);
            for batch in [1, 5] {
                let n = measure_step(cfg, batch);
                assert_eq!(
                    n, 0,
                    "step {cell:?} batch {batch}: {n} allocations after warm-up"
                );
            }
        }
    });

    // ONNX activations: the forward, int8 and training paths with custom functions.
    one.install(|| {
        let mut acts = [rnn_kernels::GateActivations::standard(CellKind::LSTM); 2];
        acts[0].f = rnn_kernels::Activation::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        };
        acts[1].h = rnn_kernels::Activation::Softplus;
        let cfg = RnnConfig::new(CellKind::LSTM, 13, 37)
            .with_layers(2)
            .with_direction(Direction::Bidirectional)
            .with_activations(Some(acts));
        let layout = TensorLayout::BatchMajor;
        let (big, small) = (
            SeqShape::new(6, 7).with_layout(layout),
            SeqShape::new(4, 3).with_layout(layout),
        );
        assert_eq!(
            measure_forward::<f32>(cfg, big, small),
            0,
            "activations forward"
        );
        assert_eq!(
            measure_forward::<i8>(cfg, big, small),
            0,
            "activations int8"
        );
        let n = measure_train::<4>(cfg, big, small, Activations::Recompute);
        assert_eq!(n, 0, "activations training");
    });

    one.install(|| {
        let n = measure_output(9, 37, 70);
        assert_eq!(n, 0, "output layer: {n} allocations after warm-up");
    });

    // ---- two threads, a shape the kernels split across threads ----
    let two = pool(2);
    let mut report = Vec::new();
    two.install(|| {
        // Let both workers steal and wait first: rayon's work-stealing deques register
        // each thread with their memory reclamation (crossbeam-epoch) the first time it
        // looks for work while waiting, a one-time allocation of the pool, not of our
        // calls. A join whose other half sleeps makes the thread that finishes first
        // wait for it, in both orders.
        let nap = || std::thread::sleep(std::time::Duration::from_micros(300));
        for _ in 0..50 {
            rayon::join(nap, || std::hint::black_box(1));
            rayon::join(|| std::hint::black_box(1), nap);
        }
        for cell in [variants::RNN_TANH, variants::LSTM_PEEPHOLE, variants::GRU] {
            let cfg = RnnConfig::new(cell, 256, 256).with_direction(Direction::Bidirectional);
            let n = measure_forward::<f32>(cfg, SeqShape::new(4, 32), SeqShape::new(2, 16));
            report.push(format!(
                "forward {:?} 2 threads: {n} allocations / 6 calls",
                cell
            ));
            let n8 = measure_forward::<i8>(cfg, SeqShape::new(4, 32), SeqShape::new(2, 16));
            report.push(format!(
                "int8 forward {cell:?} 2 threads: {n8} allocations / 6 calls"
            ));
            assert_eq!(
                n8, 0,
                "int8 forward {cell:?}: {n8} allocations with 2 threads"
            );
            let n1 = measure_step(RnnConfig::new(cell, 256, 256), 32);
            report.push(format!(
                "step {:?} 2 threads: {n1} allocations / 5 calls",
                cell
            ));
            let n2 = measure_train::<2>(
                cfg,
                SeqShape::new(4, 32),
                SeqShape::new(2, 16),
                Activations::Keep,
            );
            report.push(format!(
                "training {cell:?} 2 threads: {n2} allocations / 4 steps"
            ));
            assert_eq!(n, 0, "forward {cell:?}: {n} allocations with 2 threads");
            assert_eq!(n1, 0, "step {cell:?}: {n1} allocations with 2 threads");
            assert_eq!(n2, 0, "training {cell:?}: {n2} allocations with 2 threads");
        }
        let n = measure_output(64, 256, 600);
        report.push(format!("output layer 2 threads: {n} allocations"));
        assert_eq!(n, 0, "output layer: {n} allocations with 2 threads");
    });
    println!("{}", report.join("\n"));
}
