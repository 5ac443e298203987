from palmup.cli import run

run()
