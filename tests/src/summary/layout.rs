//! Where each region of a bus-address map goes on a line of a given width, for the text map
//! and the SVG alike.
//!
//! Regions are drawn to scale by size: linearly when the largest is at most 16 times the
//! smallest, else by the logarithm of the size (each doubling adds the same width). The unused
//! addresses between regions are not drawn to scale: each gap is a fixed-width break.

use super::facts::Range;

/// The largest size ratio still drawn linearly.
pub const LINEAR_RATIO: u64 = 16;

/// How sizes become widths.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Width proportional to size.
    Linear,
    /// Width proportional to 1 + log2(size / smallest size).
    Log,
}

impl Scale {
    /// The scale for regions of these sizes.
    pub fn for_sizes(sizes: impl IntoIterator<Item = u64>) -> Self {
        let sizes: Vec<u64> = sizes.into_iter().filter(|&s| s > 0).collect();
        let (Some(&min), Some(&max)) = (sizes.iter().min(), sizes.iter().max()) else {
            return Scale::Linear;
        };
        if max / min > LINEAR_RATIO {
            Scale::Log
        } else {
            Scale::Linear
        }
    }

    /// The words a legend uses for it.
    pub fn describe(self) -> &'static str {
        match self {
            Scale::Linear => "widths to scale",
            Scale::Log => "widths on a log scale (+1 per doubling)",
        }
    }

    fn weight(self, size: u64, smallest: u64) -> f64 {
        let ratio = size.max(1) as f64 / smallest.max(1) as f64;
        match self {
            Scale::Linear => ratio,
            Scale::Log => 1.0 + ratio.log2(),
        }
    }
}

/// One region's place on the line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// First column (or pixel).
    pub x: usize,
    /// Width in columns (or pixels), at least the minimum asked for.
    pub width: usize,
    /// Whether a gap break precedes it.
    pub after_gap: bool,
}

/// The placement of every region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// The scale used.
    pub scale: Scale,
    /// One span per region, in the order given.
    pub spans: Vec<Span>,
    /// The first column of each gap break.
    pub gaps: Vec<usize>,
    /// Total width used.
    pub width: usize,
}

/// Places `ranges` (sorted by start) on `width` units, with `gap` units per break and at least
/// `min` units per region. Regions that overlap or touch get no break between them.
pub fn place(ranges: &[Range], width: usize, gap: usize, min: usize) -> Layout {
    let scale = Scale::for_sizes(ranges.iter().map(|r| r.size));
    let smallest = ranges.iter().map(|r| r.size).filter(|&s| s > 0).min().unwrap_or(1);
    let breaks: Vec<bool> = ranges
        .iter()
        .enumerate()
        .map(|(i, r)| match i {
            0 => r.start > 0,
            _ => r.start > ranges[i - 1].end(),
        })
        .collect();
    let gap_units = gap * breaks.iter().filter(|&&b| b).count();
    let available = width.saturating_sub(gap_units).max(min * ranges.len());
    let weights: Vec<f64> = ranges.iter().map(|r| scale.weight(r.size, smallest)).collect();
    let widths = apportion(&weights, available, min);
    let (mut x, mut spans, mut gaps) = (0, Vec::new(), Vec::new());
    for (&after_gap, &w) in breaks.iter().zip(&widths) {
        if after_gap {
            gaps.push(x);
            x += gap;
        }
        spans.push(Span { x, width: w, after_gap });
        x += w;
    }
    Layout { scale, spans, gaps, width: x }
}

/// Splits `total` units in proportion to `weights`, each at least `min` (a region whose share
/// would be smaller gets `min` and the rest is shared among the others), by largest remainder.
fn apportion(weights: &[f64], total: usize, min: usize) -> Vec<usize> {
    let n = weights.len();
    let mut pinned = vec![false; n];
    let (free_total, free_sum) = loop {
        let free_total = total.saturating_sub(min * pinned.iter().filter(|&&p| p).count()) as f64;
        let free_sum: f64 = weights.iter().zip(&pinned).filter(|(_, &p)| !p).map(|(w, _)| w).sum();
        let mut changed = false;
        for (w, p) in weights.iter().zip(pinned.iter_mut()) {
            if !*p && w / free_sum * free_total < min as f64 {
                *p = true;
                changed = true;
            }
        }
        if !changed {
            break (free_total, free_sum);
        }
    };
    let shares: Vec<f64> = weights
        .iter()
        .zip(&pinned)
        .map(|(w, &p)| if p { min as f64 } else { w / free_sum * free_total })
        .collect();
    let mut widths: Vec<usize> = shares.iter().map(|s| s.floor() as usize).collect();
    let spare = total.saturating_sub(widths.iter().sum());
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| (shares[b] - shares[b].floor()).total_cmp(&(shares[a] - shares[a].floor())));
    for &i in order.iter().take(spare) {
        widths[i] += 1;
    }
    widths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, size: u64) -> Range {
        Range { start, size }
    }

    #[test]
    fn comparable_sizes_are_linear() {
        let layout = place(&[r(0, 1 << 30), r(1 << 31, 1 << 31), r(1 << 59, 1 << 31)], 66, 3, 3);
        assert_eq!(layout.scale, Scale::Linear);
        let widths: Vec<usize> = layout.spans.iter().map(|s| s.width).collect();
        assert_eq!(widths, vec![12, 24, 24], "1 GiB : 2 GiB : 2 GiB");
        assert_eq!(layout.gaps, vec![12, 39], "a break after the default window and before the DDW");
        assert_eq!(layout.spans[2].x, 42);
        assert_eq!(layout.width, 66, "every unit used");
    }

    #[test]
    fn sizes_orders_apart_are_logarithmic() {
        let layout = place(&[r(0, 1 << 30), r(1 << 31, 1 << 31), r(1 << 45, 1 << 40)], 100, 0, 1);
        assert_eq!(layout.scale, Scale::Log);
        let widths: Vec<usize> = layout.spans.iter().map(|s| s.width).collect();
        // 1 GiB, 2 GiB, 1 TiB: weights 1, 2 and 11 (ten more doublings) of 14.
        assert_eq!(widths, vec![7, 14, 79]);
    }

    #[test]
    fn touching_regions_have_no_break_and_small_ones_keep_the_minimum() {
        let layout = place(&[r(0, 1 << 31), r(1 << 31, 1 << 12)], 40, 3, 5);
        assert!(layout.gaps.is_empty());
        assert_eq!(layout.spans[1].width, 5, "the 4 KiB region keeps the minimum");
        assert_eq!((layout.spans[0].width, layout.spans[1].x), (35, 35));
    }
}
