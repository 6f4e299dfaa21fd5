//! The paths agree with each other, and every path the CPU has is tested.

use super::{apply, bound, isas, reference, ulp, FUNCS};
use crate::Isa;

/// The ISA paths agree with each other within the bound (they are compared with the
/// reference by the sweeps; here: AVX-512 and AVX2 are even bit-identical, the
/// portable path is within 2 bounds of both).
#[test]
fn isas_agree() {
    let isas = isas();
    let xs: Vec<f32> = (0..200_000u32)
        .map(|i| (i as f32 - 100_000.0) * 1.3e-3)
        .collect();
    for f in FUNCS {
        let outs: Vec<Vec<f32>> = isas
            .iter()
            .map(|&isa| {
                let mut o = vec![0.0; xs.len()];
                apply(isa, f, &xs, &mut o);
                o
            })
            .collect();
        for (k, &x) in xs.iter().enumerate() {
            let u = ulp(reference(f, x));
            for (ii, &isa) in isas.iter().enumerate() {
                if outs[ii][k].to_bits() == outs[0][k].to_bits() {
                    continue;
                }
                let d = (f64::from(outs[ii][k]) - f64::from(outs[0][k])).abs() / u;
                assert!(
                    isa == Isa::Portable,
                    "{f:?}({x:e}) {isa:?} vs {:?} not bit-identical",
                    isas[0]
                );
                assert!(
                    d <= 2.0 * bound(f).0,
                    "{f:?}({x:e}) {isa:?} vs {:?}: {d} ulp",
                    isas[0]
                );
            }
        }
    }
}

/// Every path the CPU supports is really exercised here (a silent fallback to the
/// portable path would be a bug), and the AVX-512 one is compared when present.
#[test]
fn all_paths_exercised() {
    let isas = isas();
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(isas.contains(&Isa::Avx512), Isa::Avx512.is_available());
        assert_eq!(isas.contains(&Isa::Avx2), Isa::Avx2.is_available());
        assert_eq!(
            Isa::Avx512.is_available(),
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        );
    }
    assert!(isas.contains(&Isa::Portable));
}
