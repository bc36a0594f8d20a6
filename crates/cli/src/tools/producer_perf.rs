//! `kafka-producer-perf-test`: not built yet.

/// Runs `kafka-producer-perf-test` with these arguments; returns the exit code.
pub fn main(_args: Vec<String>) -> i32 {
    eprintln!("kafka-producer-perf-test: not implemented yet");
    1
}
