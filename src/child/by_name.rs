//! Children found by their Job's name, without a second copy of each name: a herd of 100,000
//! unpacked children would keep 100,000 more strings. The table holds indexes into the
//! children, and hashes and compares the names they point at.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use super::ChildSpec;

#[derive(Debug, Clone, Default)]
pub(super) struct ByName {
    table: HashTable<u32>,
    hasher: RandomState,
}

impl ByName {
    pub(super) fn get(&self, specs: &[ChildSpec], name: &str) -> Option<usize> {
        let hash = self.hasher.hash_one(name);
        self.table
            .find(hash, |&i| &*specs[i as usize].name == name)
            .map(|&i| i as usize)
    }

    /// Finds `specs[index]` by its name from now on (in place of another of that name).
    pub(super) fn insert(&mut self, specs: &[ChildSpec], index: usize) {
        let name = &*specs[index].name;
        let hash = self.hasher.hash_one(name);
        let hasher = &self.hasher;
        match self
            .table
            .find_mut(hash, |&i| &*specs[i as usize].name == name)
        {
            Some(slot) => *slot = index as u32,
            None => {
                self.table.insert_unique(hash, index as u32, |&i| {
                    hasher.hash_one(&*specs[i as usize].name)
                });
            }
        }
    }

    pub(super) fn remove(&mut self, specs: &[ChildSpec], index: usize) {
        let hash = self.hasher.hash_one(&*specs[index].name);
        if let Ok(entry) = self.table.find_entry(hash, |&i| i as usize == index) {
            entry.remove();
        }
    }

    pub(super) fn shrink_to_fit(&mut self, specs: &[ChildSpec]) {
        let hasher = &self.hasher;
        self.table
            .shrink_to_fit(|&i| hasher.hash_one(&*specs[i as usize].name));
    }
}

/// The index follows from the children it points into, which `Children` compares.
impl PartialEq for ByName {
    fn eq(&self, other: &ByName) -> bool {
        self.table.len() == other.table.len()
    }
}
