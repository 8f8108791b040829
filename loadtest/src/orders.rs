//! The orders the load generator sends, and what the seed flow must make
//! of each.

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

/// What the seed flow's `transform` task must output for one order.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    order_id: u64,
    customer_name: String,
    address: String,
    total_price: f64,
}

impl Expected {
    /// The transform of `order(n)`, computed here rather than by JSONata.
    pub fn of(n: u64) -> Self {
        let order = order(n);
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        Self {
            order_id: n,
            customer_name: format!(
                "{} {}",
                text(&order["first_name"]),
                text(&order["last_name"])
            ),
            address: format!(
                "{}, {}",
                text(&order["address"]["city"]),
                text(&order["address"]["country"])
            ),
            total_price: expected_total_price(&order),
        }
    }

    /// Whether `value` (the transform's `value` output) is this order's
    /// transform. JSONata computes in f64, so ids and prices compare as f64
    /// with a tolerance of a thousandth of a cent.
    pub fn matches(&self, value: &Value) -> bool {
        let number = |key: &str| value.get(key).and_then(Value::as_f64);
        let text = |key: &str| value.get(key).and_then(Value::as_str);
        number("order_id") == Some(self.order_id as f64)
            && text("customer_name") == Some(self.customer_name.as_str())
            && text("address") == Some(self.address.as_str())
            && number("total_price").is_some_and(|p| (p - self.total_price).abs() < 1e-5)
    }
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

    #[test]
    fn expected_transform_matches_only_the_right_output() {
        let expected = Expected::of(5);
        let o = order(5);
        let good = json!({
            "order_id": 5.0,
            "customer_name": format!("{} {}", o["first_name"].as_str().unwrap(), o["last_name"].as_str().unwrap()),
            "address": format!("{}, {}", o["address"]["city"].as_str().unwrap(), o["address"]["country"].as_str().unwrap()),
            "total_price": expected_total_price(&o),
        });
        assert!(expected.matches(&good));
        let mut wrong_total = good.clone();
        wrong_total["total_price"] = json!(expected_total_price(&o) + 1.0);
        assert!(!expected.matches(&wrong_total));
        let mut wrong_id = good.clone();
        wrong_id["order_id"] = json!(6);
        assert!(!expected.matches(&wrong_id));
        assert!(!expected.matches(&json!(null)));
        assert!(!Expected::of(6).matches(&good));
    }
}
