//! Drives `HeadTailBuffer` with arbitrary sizes, writes, cursors and a close, and panics on any
//! difference from the naive reference model (`procwarden::model`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    procwarden::model::check_script(data);
});
