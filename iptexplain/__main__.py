from iptexplain.cli import main

main()
