//! Peregrine's load generator: the orders it sends.

use serde_json::{Value, json};

const FIRST_NAMES: [&str; 4] = ["Ada", "Grace", "Edsger", "Barbara"];
const LAST_NAMES: [&str; 4] = ["Lovelace", "Hopper", "Dijkstra", "Liskov"];
const CITIES: [(&str, &str); 3] = [("Paris", "France"), ("Lyon", "France"), ("Austin", "USA")];

/// The `n`th order of a run: the message the seed benchmark publishes.
/// Deterministic, so a run can be replayed and its outputs checked.
pub fn order(n: u64) -> Value {
    let pick = |len: usize| (n as usize) % len;
    let (city, country) = CITIES[pick(CITIES.len())];
    let items: Vec<Value> = (0..(1 + n % 3))
        .map(|i| {
            json!({
                "product_id": format!("p-{}", (n + i) % 97),
                "quantity": 1 + (n + i) % 4,
                "price_per_unit": 2.5 * (1 + (n + 2 * i) % 5) as f64,
            })
        })
        .collect();
    json!({
        "order_id": n,
        "first_name": FIRST_NAMES[pick(FIRST_NAMES.len())],
        "last_name": LAST_NAMES[pick(LAST_NAMES.len()) ^ 1],
        "address": { "city": city, "country": country },
        "items": items,
    })
}

/// What the seed flow's transform must produce for `order(n)`.
pub fn expected_total_price(order: &Value) -> f64 {
    order["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| {
                    i["quantity"].as_f64().unwrap_or(0.0)
                        * i["price_per_unit"].as_f64().unwrap_or(0.0)
                })
                .sum()
        })
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_deterministic_and_vary() {
        assert_eq!(order(7), order(7));
        assert_ne!(order(7), order(8));
        assert_eq!(order(7)["order_id"], 7);
    }

    #[test]
    fn expected_total_sums_every_item() {
        let o = json!({"items": [
            {"quantity": 2, "price_per_unit": 2.5},
            {"quantity": 1, "price_per_unit": 10.0}
        ]});
        assert_eq!(expected_total_price(&o), 15.0);
    }
}
