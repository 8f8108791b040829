//! `--plot FILE.svg`: latency percentiles against rate, on a log scale, with
//! Kestra 0.22's figures beside them when `--compare-seed` is on. Drawn from
//! the same run reports as the JSON.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::report::{RunReport, SeedColumns, kestra_seed};

type Series<'a> = (&'a str, RGBColor, Vec<(f64, f64)>);

fn ours<'a>(
    runs: &[RunReport],
    name: &'a str,
    color: RGBColor,
    pick: fn(&RunReport) -> Option<f64>,
) -> Series<'a> {
    let points = runs
        .iter()
        .filter_map(|r| pick(r).map(|ms| (r.rate, ms)))
        .collect();
    (name, color, points)
}

/// The series the plot shows, each a list of (rate, ms).
fn series(runs: &[RunReport], seed: SeedColumns) -> Vec<Series<'static>> {
    let mut all = vec![
        ours(runs, "Peregrine p50", RGBColor(0x1f, 0x77, 0xb4), |r| {
            r.p50_ms
        }),
        ours(runs, "Peregrine p99", RGBColor(0xff, 0x7f, 0x0e), |r| {
            r.p99_ms
        }),
        ours(runs, "Peregrine max", RGBColor(0xd6, 0x27, 0x28), |r| {
            r.max_ms
        }),
        ours(runs, "Peregrine last", RGBColor(0x2c, 0xa0, 0x2c), |r| {
            r.last_ms
        }),
    ];
    let kestra = |backend: usize| {
        runs.iter()
            .filter_map(|r| {
                let (jdbc, kafka) = kestra_seed(r.rate);
                if backend == 0 { jdbc } else { kafka }.map(|ms| (r.rate, ms))
            })
            .collect::<Vec<_>>()
    };
    if seed.jdbc() {
        all.push((
            "Kestra 0.22 JDBC (last)",
            RGBColor(0x7f, 0x7f, 0x7f),
            kestra(0),
        ));
    }
    if seed.kafka() {
        all.push((
            "Kestra 0.22 Kafka (last)",
            RGBColor(0x94, 0x67, 0xbd),
            kestra(1),
        ));
    }
    all.retain(|(_, _, points)| !points.is_empty());
    all
}

/// Draws `runs` into the SVG file at `path`.
pub fn draw(path: &Path, runs: &[RunReport], seed: SeedColumns, title: &str) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| Error::Report(format!("{}: {e}", path.display()));
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.rate.total_cmp(&b.rate));
    let all = series(&sorted, seed);
    let values = || all.iter().flat_map(|(_, _, p)| p.iter().copied());
    let rate_max = values().map(|(x, _)| x).fold(1.0_f64, f64::max) * 1.05;
    let ms_min = values().map(|(_, y)| y).fold(f64::INFINITY, f64::min);
    let ms_max = values().map(|(_, y)| y).fold(0.0_f64, f64::max);
    let (ms_min, ms_max) = if ms_min.is_finite() && ms_min > 0.0 {
        (ms_min / 2.0, ms_max * 2.0)
    } else {
        (0.01, 10.0)
    };

    let root = SVGBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(72)
        .build_cartesian_2d(0.0..rate_max, (ms_min..ms_max).log_scale())
        .map_err(|e| failed(&e))?;
    chart
        .configure_mesh()
        .x_label_formatter(&|rate| format!("{rate:.0}"))
        .y_label_formatter(&|ms| {
            if *ms >= 1.0 {
                format!("{ms:.0}")
            } else {
                format!("{ms:.2}")
            }
        })
        .x_desc("rate (executions/s)")
        .y_desc("latency from intended start (ms, log)")
        .draw()
        .map_err(|e| failed(&e))?;
    for (name, color, points) in all {
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
            .map_err(|e| failed(&e))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(PointSeries::of_element(points, 3, color, &|c, s, st| {
                Circle::new(c, s, st.filled())
            }))
            .map_err(|e| failed(&e))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| failed(&e))?;
    root.present().map_err(|e| failed(&e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rate: f64, ms: f64) -> RunReport {
        RunReport {
            rate,
            executions: 10,
            completed: 10,
            failed: 0,
            retried: 0,
            last_ms: Some(ms),
            p50_ms: Some(ms / 2.0),
            p90_ms: Some(ms),
            p99_ms: Some(ms),
            p999_ms: Some(ms),
            max_ms: Some(ms * 2.0),
            achieved_rate: rate,
            stages: None,
        }
    }

    #[test]
    fn draws_every_series_into_an_svg() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plot.svg");
        draw(
            &path,
            &[run(10.0, 0.5), run(100.0, 0.8)],
            SeedColumns::JdbcAndKafka,
            "test",
        )
        .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..50.min(svg.len())]);
        for name in [
            "Peregrine p50",
            "Peregrine p99",
            "Peregrine max",
            "Peregrine last",
            "Kestra 0.22 JDBC",
            "Kestra 0.22 Kafka",
        ] {
            assert!(svg.contains(name), "no {name}");
        }
    }

    #[test]
    fn seed_series_only_where_kestra_measured() {
        let all = series(
            &[run(150.0, 1.0), run(300.0, 1.0)],
            SeedColumns::JdbcAndKafka,
        );
        let jdbc = all.iter().find(|(n, _, _)| n.contains("JDBC"));
        assert!(jdbc.is_none(), "JDBC has no 150 or 300 figure");
        let kafka = all.iter().find(|(n, _, _)| n.contains("Kafka")).unwrap();
        assert_eq!(kafka.2, vec![(150.0, 750.0)]);
        let nothing = series(&[], SeedColumns::Off);
        assert!(nothing.is_empty());
        let kafka_only = series(&[run(100.0, 1.0)], SeedColumns::Kafka);
        let names: Vec<&str> = kafka_only.iter().map(|(n, _, _)| *n).collect();
        assert!(names.contains(&"Kestra 0.22 Kafka (last)"), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("JDBC")), "{names:?}");
    }

    #[test]
    fn an_empty_run_list_still_draws() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.svg");
        draw(&path, &[], SeedColumns::Off, "nothing").unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("nothing"));
    }
}
