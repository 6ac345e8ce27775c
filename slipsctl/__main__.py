from slipsctl.cli import app


def main() -> None:
    app(prog_name="slipsctl")


if __name__ == "__main__":
    main()
