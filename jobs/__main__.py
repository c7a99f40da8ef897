from jobs.launch import main

main()
