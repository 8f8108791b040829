//! Peregrine's write-ahead log: segmented, mmap-backed, group-committed.
