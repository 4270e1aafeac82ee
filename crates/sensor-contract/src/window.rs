//! One sensor's sliding window: the last `capacity` temperatures, oldest first.

/// A fixed-capacity ring of the most recent temperatures of one sensor.
///
/// Appending to a full window drops the oldest reading, like Python's `deque(maxlen=n)`.
/// Two windows are equal when they have the same capacity and the same readings in the same
/// order, wherever the ring happens to start.
#[derive(Debug, Clone)]
pub struct Window {
    values: Box<[f64]>,
    /// Index of the oldest value. `u32`s rather than `usize`s: a window is 24 bytes instead
    /// of 32 in every state store slot (a processor holds one per sensor).
    head: u32,
    len: u32,
}

impl Window {
    /// An empty window holding at most `capacity` readings (`capacity` ≥ 1).
    pub fn new(capacity: usize) -> Self {
        assert!(capacity >= 1, "a window holds at least one reading");
        assert!(
            u32::try_from(capacity).is_ok(),
            "a window holds at most u32::MAX readings"
        );
        Self {
            values: vec![0.0; capacity].into_boxed_slice(),
            head: 0,
            len: 0,
        }
    }

    /// Appends a temperature, dropping the oldest one when the window is full.
    pub fn push(&mut self, value: f64) {
        let capacity = self.values.len();
        let (head, len) = (self.head as usize, self.len as usize);
        if len < capacity {
            let at = head + len;
            self.values[if at < capacity { at } else { at - capacity }] = value;
            self.len += 1;
        } else {
            self.values[head] = value;
            self.head = if head + 1 == capacity {
                0
            } else {
                self.head + 1
            };
        }
    }

    /// How many readings the window holds now.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the window holds no reading.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most readings the window holds.
    pub fn capacity(&self) -> usize {
        self.values.len()
    }

    /// Whether the window holds `capacity` readings.
    pub fn is_full(&self) -> bool {
        self.len() == self.values.len()
    }

    /// The readings, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        let (older, newer) = self.as_slices();
        older.iter().chain(newer).copied()
    }

    /// The values oldest first, as two slices (the ring wraps at most once): no division per
    /// value, unlike indexing modulo the capacity.
    pub fn as_slices(&self) -> (&[f64], &[f64]) {
        let (head, len) = (self.head as usize, self.len as usize);
        let first = (self.values.len() - head).min(len);
        (
            &self.values[head..head + first],
            &self.values[..len - first],
        )
    }

    /// The arithmetic mean of the readings, summed oldest first; `None` when empty.
    ///
    /// The sum is recomputed rather than kept running so that the result is bit-for-bit the
    /// mean of exactly these readings, with no drift from values that already left the window.
    pub fn mean(&self) -> Option<f64> {
        if self.len == 0 {
            return None;
        }
        // Summed oldest first, as the reference model does, so the result is bit-identical.
        let (older, newer) = self.as_slices();
        let sum: f64 = older.iter().chain(newer).sum();
        Some(sum / f64::from(self.len))
    }
}

impl PartialEq for Window {
    fn eq(&self, other: &Self) -> bool {
        self.capacity() == other.capacity() && self.len == other.len && self.iter().eq(other.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_capacity_values_oldest_first() {
        let mut w = Window::new(3);
        assert!(w.is_empty());
        for v in [1.0, 2.0, 3.0, 4.0, 5.0] {
            w.push(v);
        }
        assert_eq!(w.iter().collect::<Vec<_>>(), vec![3.0, 4.0, 5.0]);
        assert!(w.is_full());
        assert_eq!(w.mean(), Some(4.0));
    }

    #[test]
    fn partial_window_mean_and_len() {
        let mut w = Window::new(10);
        w.push(1.5);
        w.push(2.5);
        assert_eq!(w.len(), 2);
        assert!(!w.is_full());
        assert_eq!(w.mean(), Some(2.0));
        assert_eq!(Window::new(2).mean(), None);
    }

    #[test]
    fn equal_readings_are_equal_windows_wherever_the_ring_starts() {
        let mut wrapped = Window::new(3);
        let mut fresh = Window::new(3);
        for v in [9.0, 1.0, 2.0, 3.0] {
            wrapped.push(v);
        }
        for v in [1.0, 2.0, 3.0] {
            fresh.push(v);
        }
        assert_eq!(wrapped, fresh);
        fresh.push(4.0);
        assert_ne!(wrapped, fresh);
        assert_ne!(Window::new(2), Window::new(3));
    }

    #[test]
    fn a_window_is_three_words() {
        // The state store holds one per sensor, inline in its hash table's buckets.
        assert_eq!(std::mem::size_of::<Window>(), 24);
    }

    #[test]
    fn capacity_one_holds_only_the_newest() {
        let mut w = Window::new(1);
        w.push(7.0);
        w.push(8.0);
        assert_eq!(w.iter().collect::<Vec<_>>(), vec![8.0]);
    }
}
