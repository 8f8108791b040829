//! The web UI's built assets (`ui/dist`) are embedded in the binary: a
//! rebuild of them rebuilds the server.

fn main() {
    println!("cargo:rerun-if-changed=ui/dist");
}
