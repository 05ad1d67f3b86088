//! herd facade
