//! `kafka-consumer-groups`: not built yet.

/// Runs `kafka-consumer-groups` with these arguments; returns the exit code.
pub fn main(_args: Vec<String>) -> i32 {
    eprintln!("kafka-consumer-groups: not implemented yet");
    1
}
