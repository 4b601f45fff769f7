//! A benchmark's settings, read from its environment.
#![allow(dead_code)]

use std::str::FromStr;

/// The number in variable `name`, or `default` when it is unset or not a number.
pub fn number<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
