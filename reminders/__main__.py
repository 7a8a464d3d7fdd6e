from reminders.cli.app import main

main()
