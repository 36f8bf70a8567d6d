//! `s3loader forecasts`: which indexed netCDF files hold a forecast for a
//! time. The parsing of what users type lives here; the query itself is
//! [`loader::forecast_index::ForecastIndex::query`].

use chrono::DateTime;
use loader::config::{Config, DestinationConfig, Format};
use loader::forecast_index::{self, ForecastHit, ForecastIndex};
use loader::format::netcdf::{iso, parse_utc};

use crate::error::{Error, Result};

/// `2018-11-29T12:00Z`, `2018-11-29T12:00:00Z`, `2018-11-29T12:00:00+01:00`
/// or `2018-11-29 12:00`, as the index writes it (UTC, seconds, `Z`).
pub fn parse_time(text: &str) -> Result<String> {
    let t = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(t) {
        return Ok(iso(t.timestamp()));
    }
    parse_utc(t).map(iso).ok_or_else(|| {
        Error::Usage(format!(
            "--time {text:?}: expected a UTC time like 2018-11-29T12:00Z"
        ))
    })
}

/// An ISO 8601 duration of days, hours, minutes, seconds (`PT2H`,
/// `PT1H30M`, `P1DT6H`) or plain seconds (`7200`), in seconds.
pub fn parse_period(text: &str) -> Result<i64> {
    let bad = || {
        Error::Usage(format!(
            "--period {text:?}: expected an ISO 8601 duration like PT2H or P1DT6H, or seconds"
        ))
    };
    if let Ok(s) = text.parse::<i64>() {
        return if s >= 0 { Ok(s) } else { Err(bad()) };
    }
    let rest = text.strip_prefix('P').ok_or_else(bad)?;
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, t),
        None => (rest, ""),
    };
    let mut total = 0i64;
    let mut take = |part: &str, units: &[(char, i64)]| -> Result<()> {
        let mut number = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let scale = units.iter().find(|(u, _)| *u == c).ok_or_else(bad)?.1;
            total += number.parse::<i64>().map_err(|_| bad())? * scale;
            number.clear();
        }
        if number.is_empty() {
            Ok(())
        } else {
            Err(bad())
        }
    };
    take(days, &[('D', 86400)])?;
    take(time, &[('H', 3600), ('M', 60), ('S', 1)])?;
    if rest.is_empty() || rest.ends_with('T') {
        return Err(bad());
    }
    Ok(total)
}

/// `PT4H`, `PT0S`, `P9DT18H`: how lead times are shown.
pub fn format_period(seconds: i64) -> String {
    let (d, h, m, s) = (
        seconds / 86400,
        seconds % 86400 / 3600,
        seconds % 3600 / 60,
        seconds % 60,
    );
    let mut out = String::from("P");
    if d > 0 {
        out += &format!("{d}D");
    }
    if h + m + s > 0 || d == 0 {
        out.push('T');
        if h > 0 {
            out += &format!("{h}H");
        }
        if m > 0 {
            out += &format!("{m}M");
        }
        if s > 0 || (h == 0 && m == 0) {
            out += &format!("{s}S");
        }
    }
    out
}

/// The index table: `table` if given, else the one netcdf route's table.
pub fn table(config: &Config, table: Option<&str>) -> Result<String> {
    if let Some(t) = table {
        return Ok(t.to_owned());
    }
    let tables: std::collections::BTreeSet<&str> = config
        .routes
        .iter()
        .filter(|r| r.format == Format::Netcdf)
        .filter(|r| {
            matches!(
                config.destinations.get(&r.destination),
                Some(DestinationConfig::Dynamodb { .. })
            )
        })
        .map(|r| r.table.as_str())
        .collect();
    match tables.len() {
        1 => Ok(tables.into_iter().next().unwrap().to_owned()),
        0 => Err(Error::Usage(
            "the config has no netcdf route to a dynamodb destination: pass --table".into(),
        )),
        _ => Err(Error::Usage(format!(
            "the config indexes into several tables {tables:?}: pass --table"
        ))),
    }
}

/// Queries the index (client from the standard AWS settings;
/// `AWS_ENDPOINT_URL_DYNAMODB` for a local endpoint).
pub async fn lookup(
    table: &str,
    time: &str,
    period: Option<i64>,
    variable: Option<&str>,
) -> Result<Vec<ForecastHit>> {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    ForecastIndex::new(forecast_index::client(&shared), table)
        .query(time, period, variable)
        .await
        .map_err(Error::loader("query the forecast index"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_people_type_them() {
        for t in [
            "2018-11-29T12:00Z",
            "2018-11-29T12:00:00Z",
            "2018-11-29 12:00",
            "2018-11-29T13:00:00+01:00",
        ] {
            assert_eq!(parse_time(t).unwrap(), "2018-11-29T12:00:00Z", "{t}");
        }
        assert!(parse_time("tomorrow").is_err());
    }

    #[test]
    fn periods_in_iso_8601_or_seconds() {
        assert_eq!(parse_period("PT2H").unwrap(), 7200);
        assert_eq!(parse_period("PT1H30M").unwrap(), 5400);
        assert_eq!(parse_period("P1DT6H").unwrap(), 108_000);
        assert_eq!(parse_period("PT0S").unwrap(), 0);
        assert_eq!(parse_period("3600").unwrap(), 3600);
        for bad in ["2H", "P", "PT", "PT2X", "-5", "PT2"] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
        assert_eq!(format_period(14400), "PT4H");
        assert_eq!(format_period(0), "PT0S");
        assert_eq!(format_period(842_400), "P9DT18H");
        assert_eq!(format_period(5430), "PT1H30M30S");
    }
}
