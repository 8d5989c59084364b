//! Tool search over large catalogs: policy gate first, then Top-N ranking.
