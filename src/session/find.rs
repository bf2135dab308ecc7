//! Object searches (§5.7): the handles C_FindObjectsInit found, handed out in turns.

use cryptoki_sys::CK_OBJECT_HANDLE;

#[derive(Default)]
pub struct FindOp {
    pub handles: Vec<CK_OBJECT_HANDLE>,
    pub position: usize,
}

impl FindOp {
    pub fn new(handles: Vec<CK_OBJECT_HANDLE>) -> FindOp {
        FindOp {
            handles,
            position: 0,
        }
    }

    /// C_FindObjects: up to `max` handles after those already given.
    pub fn next(&mut self, max: usize) -> Vec<CK_OBJECT_HANDLE> {
        let end = self.handles.len().min(self.position.saturating_add(max));
        let out = self
            .handles
            .get(self.position..end)
            .unwrap_or_default()
            .to_vec();
        self.position = end;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_come_in_turns_then_none() {
        let mut f = FindOp::new(vec![1, 2, 3]);
        assert_eq!(f.next(2), vec![1, 2]);
        assert_eq!(f.next(0), Vec::<CK_OBJECT_HANDLE>::new());
        assert_eq!(f.next(usize::MAX), vec![3]);
        assert_eq!(f.next(5), Vec::<CK_OBJECT_HANDLE>::new());
    }
}
