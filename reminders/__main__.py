from reminders.cli.main import main

main()
