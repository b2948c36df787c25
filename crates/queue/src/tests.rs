use super::*;

#[test]
fn block_zero_means_poll_and_long_blocks_are_clamped() {
    assert_eq!(block_millis(Duration::ZERO), None);
    assert_eq!(block_millis(Duration::from_micros(10)), Some(1));
    assert_eq!(block_millis(Duration::from_secs(600)), Some(30_000));
}

#[test]
fn only_inbox_keys_are_capped() {
    let cap = |key: &str| Stream::from_key("gd", key).and_then(|s| s.cap());
    let inbox = xadd_cmd(
        "gd:inbox:{360102}:360102001",
        "p",
        cap("gd:inbox:{360102}:360102001"),
    );
    let intake = xadd_cmd("gd:intake:{360102}", "p", cap("gd:intake:{360102}"));
    let has_maxlen = |c: &redis::Cmd| {
        c.args_iter()
            .any(|a| matches!(a, redis::Arg::Simple(b) if b == b"MAXLEN"))
    };
    assert!(has_maxlen(&inbox));
    assert!(!has_maxlen(&intake));
}
