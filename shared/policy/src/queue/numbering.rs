//! Tenants numbered while a policy needs them, so that its hot path moves
//! small integers around instead of hashing and copying names. A number is
//! reused once its tenant is forgotten, so tenants come and go without the
//! table growing.

use std::collections::HashMap;
use std::sync::Arc;

/// What a numbered entry is called.
pub(crate) trait Named {
    fn name(&self) -> &Arc<str>;
}

/// Entries by number, and each one's number by name.
#[derive(Debug, Clone)]
pub(crate) struct Numbering<T> {
    /// `None` marks a number free for the next entry (in `vacant`).
    slots: Vec<Option<T>>,
    vacant: Vec<u32>,
    /// Lookup only.
    number_of: HashMap<Arc<str>, u32>,
}

impl<T> Default for Numbering<T> {
    fn default() -> Self {
        Numbering {
            slots: Vec::new(),
            vacant: Vec::new(),
            number_of: HashMap::new(),
        }
    }
}

impl<T: Named> Numbering<T> {
    /// The number of the entry called `name`, if it has one.
    pub fn number(&self, name: &str) -> Option<u32> {
        self.number_of.get(name).copied()
    }

    pub fn get(&self, number: u32) -> Option<&T> {
        self.slots.get(number as usize)?.as_ref()
    }

    pub fn get_mut(&mut self, number: u32) -> Option<&mut T> {
        self.slots.get_mut(number as usize)?.as_mut()
    }

    /// Numbers a new entry (its name must have none yet).
    pub fn insert(&mut self, entry: T) -> u32 {
        let name = entry.name().clone();
        let number = match self.vacant.pop() {
            Some(number) => {
                self.slots[number as usize] = Some(entry);
                number
            }
            None => {
                self.slots.push(Some(entry));
                // More than u32::MAX entries at once would not fit in memory.
                (self.slots.len() - 1) as u32
            }
        };
        self.number_of.insert(name, number);
        number
    }

    /// Forgets an entry; its number goes to the next one.
    pub fn remove(&mut self, number: u32) -> Option<T> {
        let entry = self.slots.get_mut(number as usize)?.take()?;
        self.number_of.remove(entry.name());
        self.vacant.push(number);
        Some(entry)
    }

    /// Every entry with its number.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(number, entry)| Some((number as u32, entry.as_ref()?)))
    }

    /// Every entry with its number, to change.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(number, entry)| Some((number as u32, entry.as_mut()?)))
    }

    /// How many entries are numbered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.number_of.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone)]
    struct Entry(Arc<str>);

    impl Named for Entry {
        fn name(&self) -> &Arc<str> {
            &self.0
        }
    }

    #[test]
    fn numbers_are_reused_after_a_removal() {
        let mut numbering = Numbering::default();
        let a = numbering.insert(Entry(Arc::from("a")));
        let b = numbering.insert(Entry(Arc::from("b")));
        assert_ne!(a, b);
        assert_eq!(numbering.number("b"), Some(b));
        assert!(numbering.remove(a).is_some());
        assert_eq!(numbering.number("a"), None);
        assert!(numbering.get(a).is_none());
        let c = numbering.insert(Entry(Arc::from("c")));
        assert_eq!(c, a, "the freed number is reused");
        assert_eq!(numbering.len(), 2);
        assert_eq!(numbering.iter().count(), 2);
    }
}
