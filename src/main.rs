fn main() {
    println!("jobherd: not yet");
}
