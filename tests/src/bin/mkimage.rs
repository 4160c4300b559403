//! `mkimage KERNEL_ELF OUTPUT`: writes the raw `-bios` image for the kernel (see `tests::image`).
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, input, output] = args.as_slice() else {
        eprintln!("usage: mkimage KERNEL_ELF OUTPUT");
        std::process::exit(2);
    };
    let elf = std::fs::read(input).unwrap_or_else(|e| {
        eprintln!("mkimage: cannot read {input}: {e}");
        std::process::exit(1)
    });
    match tests::image::bios_image(&elf) {
        Ok(image) => {
            if let Err(e) = std::fs::write(output, image) {
                eprintln!("mkimage: cannot write {output}: {e}");
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("mkimage: {input}: {e}");
            std::process::exit(1);
        }
    }
}
