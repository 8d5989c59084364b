//! Usage → cost: a default [`PriceTable`] for common OpenAI models.
//!
//! The engine prices every call with `PriceTable::cost_cents(model, usage)`, where `usage`
//! carries input tokens (including cached ones), cached input tokens and output tokens exactly
//! as the API reported them. The table below lists list prices in US dollars per million tokens
//! (checked mid-2026; verify against OpenAI's pricing page and override with
//! [`crate::OpenAiConfigBuilder::prices`] or by editing the table). Keys ending in `*` match
//! dated snapshots by prefix (`gpt-4o-2024-08-06` → `gpt-4o*`); the longest prefix wins.
//! Unknown models cost the table's `default`, which is zero here: a host that runs other
//! models should add them.

use logline_core::llm::{ModelPrice, PriceTable};

const fn price(input: f64, cached: f64, output: f64) -> ModelPrice {
    ModelPrice {
        input_per_mtok: input,
        cached_input_per_mtok: cached,
        output_per_mtok: output,
    }
}

/// `(model key, input, cached input, output)` in USD per million tokens.
const PRICES: &[(&str, ModelPrice)] = &[
    ("gpt-5.5*", price(5.00, 0.50, 30.00)),
    ("gpt-5.4*", price(2.50, 0.25, 15.00)),
    ("gpt-5.4-mini*", price(0.75, 0.075, 4.50)),
    ("gpt-5.4-nano*", price(0.20, 0.02, 1.25)),
    ("gpt-5*", price(1.25, 0.125, 10.00)),
    ("gpt-5-mini*", price(0.25, 0.025, 2.00)),
    ("gpt-5-nano*", price(0.05, 0.005, 0.40)),
    ("gpt-4.1*", price(2.00, 0.50, 8.00)),
    ("gpt-4.1-mini*", price(0.40, 0.10, 1.60)),
    ("gpt-4.1-nano*", price(0.10, 0.025, 0.40)),
    ("gpt-4o*", price(2.50, 1.25, 10.00)),
    ("gpt-4o-mini*", price(0.15, 0.075, 0.60)),
    ("o3*", price(2.00, 0.50, 8.00)),
    ("o4-mini*", price(1.10, 0.275, 4.40)),
    ("text-embedding-3-small", price(0.02, 0.0, 0.0)),
    ("text-embedding-3-large", price(0.13, 0.0, 0.0)),
];

/// List prices of common OpenAI models (unknown models cost zero).
pub fn openai_prices() -> PriceTable {
    PRICES
        .iter()
        .fold(PriceTable::default(), |t, (k, p)| t.with(*k, *p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use logline_core::llm::TokenUsage;

    #[test]
    fn prices_usage_with_cached_input() {
        let t = openai_prices();
        let usage = TokenUsage {
            input_tokens: 1_000_000,
            cached_input_tokens: 400_000,
            output_tokens: 100_000,
        };
        // gpt-4.1-mini: 0.6M × 0.40 + 0.4M × 0.10 + 0.1M × 1.60 = 0.24 + 0.04 + 0.16 = $0.44
        let cents = t.cost_cents("gpt-4.1-mini-2025-04-14", &usage);
        assert!((cents - 44.0).abs() < 1e-9, "{cents}");
        // Longest prefix wins: gpt-5.4-mini is not priced as gpt-5.4 or gpt-5.
        assert_eq!(t.price("gpt-5.4-mini").output_per_mtok, 4.50);
        assert_eq!(t.price("gpt-5.4").output_per_mtok, 15.00);
        assert_eq!(t.price("gpt-5").output_per_mtok, 10.00);
        assert_eq!(t.price("llama3"), ModelPrice::default());
    }
}
