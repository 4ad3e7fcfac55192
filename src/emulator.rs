//! The local STS emulator (feature `emulator`).
