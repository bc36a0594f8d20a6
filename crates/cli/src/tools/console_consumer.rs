//! `kafka-console-consumer`: not built yet.

/// Runs `kafka-console-consumer` with these arguments; returns the exit code.
pub fn main(_args: Vec<String>) -> i32 {
    eprintln!("kafka-console-consumer: not implemented yet");
    1
}
