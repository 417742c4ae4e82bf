//! Owner (controller) uids interned to small reference-counted ids, so per-node owner
//! counts are integer-keyed and ids are reused once an owner's last pod is gone.

use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct OwnerIds {
    /// Uid → (id, pods referencing it).
    ids: HashMap<String, (u32, u32)>,
    free: Vec<u32>,
    next: u32,
}

impl OwnerIds {
    pub fn get(&self, uid: &str) -> Option<u32> {
        self.ids.get(uid).map(|&(id, _)| id)
    }

    /// The id of `uid`, taking one reference.
    pub fn acquire(&mut self, uid: &str) -> u32 {
        if let Some((id, refs)) = self.ids.get_mut(uid) {
            *refs += 1;
            return *id;
        }
        let id = self.free.pop().unwrap_or_else(|| {
            self.next += 1;
            self.next - 1
        });
        self.ids.insert(uid.to_string(), (id, 1));
        id
    }

    /// Drop one reference; the id is freed with the last.
    pub fn release(&mut self, uid: &str) {
        if let Some((id, refs)) = self.ids.get_mut(uid) {
            *refs -= 1;
            if *refs == 0 {
                let id = *id;
                self.ids.remove(uid);
                self.free.push(id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_counted_ids() {
        let mut o = OwnerIds::default();
        let a = o.acquire("a");
        assert_eq!(o.acquire("a"), a);
        let b = o.acquire("b");
        assert_ne!(a, b);
        o.release("a");
        assert_eq!(o.get("a"), Some(a));
        o.release("a");
        assert_eq!(o.get("a"), None);
        assert_eq!(o.acquire("c"), a, "freed ids are reused");
    }
}
