use clap::Parser;

fn main() -> std::process::ExitCode {
    plinth::cli::run(plinth::cli::Cli::parse())
}
